"""OpenAPI schema of the subscription API, served by drf-spectacular."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from thorn.__about__ import __version__

from .views import SubscriberDetail, SubscriberList

__all__ = ["exact_bodies", "only_subscription_endpoints", "urlpatterns"]


def only_subscription_endpoints(
    endpoints: list[tuple[str, str, str, Any]], **kwargs: Any
) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular hook: keep Thorn's endpoints, wherever they are mounted."""
    views = (SubscriberList, SubscriberDetail)
    return [
        endpoint
        for endpoint in endpoints
        if isinstance(getattr(endpoint[3], "cls", None), type)
        and issubclass(endpoint[3].cls, views)
    ]


def exact_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular hook: say what the serializers really accept and give.

    Request bodies may hold no other fields (``additionalProperties:
    false``): the serializer refuses unknown ones (the read-only ones it
    tolerates are left out, as no client needs to send them). A
    subscription in an answer always has every field, so all are required.
    """
    components = result.get("components", {}).get("schemas", {})
    for name, component in components.items():
        if component.get("type") != "object" or "properties" not in component:
            continue
        if name.endswith("Request"):
            component["additionalProperties"] = False
        elif name in RESPONSE_COMPONENTS:
            component["required"] = sorted(component["properties"])
    return result


#: The components of subscriptions in answers (from the serializers' names).
RESPONSE_COMPONENTS = frozenset({"Subscriber", "SubscriberSummary"})

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "Thorn webhook subscriptions",
    "DESCRIPTION": (
        "Subscribe URLs to events; each event is then POSTed to them, signed "
        "with the subscription's HMAC secret."
    ),
    "VERSION": __version__,
    # Separate request and response components, so read-only fields (id,
    # created_at...) are not offered as input and required inputs are exact.
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": [f"{__name__}.only_subscription_endpoints"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        f"{__name__}.exact_bodies",
    ],
}

urlpatterns = [
    path(
        "schema/",
        SpectacularAPIView.as_view(custom_settings=SCHEMA_SETTINGS),
        name="schema",
    ),
]
