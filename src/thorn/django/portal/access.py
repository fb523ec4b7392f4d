"""Who may see what: logged-in users, their own rows only, CSRF on every form.

Every portal view is wrapped by :func:`portal_view` and reads subscriptions
and deliveries only through the functions here, which filter by
``request.user``: another user's subscription or delivery is a 404, as if
it did not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from ..models import Delivery, Subscriber

__all__ = [
    "notify",
    "own_deliveries",
    "own_delivery",
    "own_subscriber",
    "own_subscribers",
    "owner",
    "portal_view",
    "safe_next",
]

View = TypeVar("View", bound=Callable[..., HttpResponse])

#: Columns lists and delivery pages never read.
SECRET_COLUMNS = ("hmac_secret", "previous_secret")
DELIVERY_HEAVY_COLUMNS = (
    "body",
    "headers",
    "policy",
    "static_secret",
    "static_extra_secrets",
)


def portal_view(view: View) -> View:
    """Login required, CSRF checked (even without the middleware), never cached."""
    wrapped: View = login_required(never_cache(csrf_protect(view)))
    return wrapped


def owner(request: HttpRequest) -> Any:
    """The logged-in user (every portal view requires one)."""
    return request.user


def own_subscribers(request: HttpRequest) -> QuerySet[Subscriber]:
    """The logged-in user's subscriptions, newest first."""
    return Subscriber.objects.filter(user=owner(request)).order_by("-created_at", "-pk")


def own_subscriber(request: HttpRequest, uuid: UUID | str) -> Subscriber:
    """One of the user's subscriptions (any other: 404)."""
    return get_object_or_404(own_subscribers(request), uuid=uuid)


def own_deliveries(request: HttpRequest) -> QuerySet[Delivery]:
    """Deliveries to the user's subscriptions, newest first, without bodies."""
    return (
        Delivery.objects.filter(subscriber__user=owner(request))
        .select_related("subscriber")
        .defer(
            *DELIVERY_HEAVY_COLUMNS,
            *(f"subscriber__{name}" for name in SECRET_COLUMNS),
        )
        .order_by("-id")
    )


def own_delivery(request: HttpRequest, delivery_id: UUID | str) -> Delivery:
    """One delivery to one of the user's subscriptions (any other: 404)."""
    return get_object_or_404(own_deliveries(request), pk=str(delivery_id))


def notify(request: HttpRequest, level: int, text: str) -> None:
    """A message for the next page (kept silent without the messages app)."""
    messages.add_message(request, level, text, fail_silently=True)


def safe_next(request: HttpRequest, default: str) -> str:
    """The ``next`` form value if it is a path on this site, else ``default``."""
    target: Any = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return str(target)
    return default
