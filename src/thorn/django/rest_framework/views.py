"""DRF views: API endpoints for users to create and manage their subscriptions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import generics
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.serializers import BaseSerializer

from .permissions import extra_permission_classes
from .serializers import (
    LazySubscriberModel,
    SubscriberErrorSerializer,
    SubscriberSerializer,
    SubscriberSummarySerializer,
    SubscriberValidationErrorSerializer,
    subscriber_model,
)

__all__ = [
    "SubscriberAPIView",
    "SubscriberDetail",
    "SubscriberList",
    "extra_permission_classes",
]

logger = logging.getLogger(__name__)

#: Error reports (Django's 500 page and mails) hide the secret of form posts.
_SECRET_POST_PARAMETER = sensitive_post_parameters("hmac_secret")
_TAGS = ["webhooks"]
_ERRORS = {
    401: OpenApiResponse(
        SubscriberErrorSerializer, description="Not logged in (token or Basic auth)."
    ),
    403: OpenApiResponse(
        SubscriberErrorSerializer,
        description="Not logged in (session auth), or a permission refused.",
    ),
}
_NOT_FOUND = {
    404: OpenApiResponse(
        SubscriberErrorSerializer,
        description="No subscription with this id belongs to the user.",
    )
}
_INVALID = {
    400: OpenApiResponse(
        SubscriberValidationErrorSerializer,
        description="The subscription is invalid: messages keyed by field.",
    ),
    415: OpenApiResponse(
        SubscriberErrorSerializer, description="The body is not application/json."
    ),
}
_UUID = OpenApiParameter(
    "uuid",
    OpenApiTypes.UUID,
    OpenApiParameter.PATH,
    description="The subscription's id.",
)


class SubscriberAPIView(generics.GenericAPIView):  # type: ignore[type-arg]
    """What both views share: the user's own subscriptions, and permissions."""

    #: The subscriber model (``THORN_SUBSCRIBER_MODEL``), looked up when read.
    model = LazySubscriberModel()
    serializer_class = SubscriberSerializer
    permission_classes = (IsAuthenticated,)
    # JSON only, as the manual's examples: payload_filters is an object,
    # which a form post cannot carry.
    parser_classes = (JSONParser,)

    def get_permissions(self) -> Sequence[Any]:
        """``permission_classes`` plus ``THORN_DRF_PERMISSION_CLASSES``."""
        extra = [cls() for cls in extra_permission_classes()]
        return [*super().get_permissions(), *extra]

    def get_queryset(self) -> QuerySet[Any]:
        """The subscriptions of the logged-in user, newest first."""
        manager = subscriber_model()._default_manager
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular
            return manager.none()
        return manager.filter(user=self.request.user).order_by("-created_at", "-pk")


@extend_schema_view(
    get=extend_schema(
        operation_id="webhook_subscriptions_list",
        summary="List your subscriptions",
        description="The logged-in user's subscriptions (without their secrets).",
        tags=_TAGS,
        responses={200: SubscriberSummarySerializer(many=True), **_ERRORS},
    ),
    post=extend_schema(
        operation_id="webhook_subscriptions_create",
        summary="Subscribe to an event",
        description=(
            "Create a subscription owned by the logged-in user. The answer "
            "holds the HMAC secret that signs its webhooks."
        ),
        tags=_TAGS,
        request=SubscriberSerializer,
        responses={201: SubscriberSerializer, **_INVALID, **_ERRORS},
    ),
)
@method_decorator(_SECRET_POST_PARAMETER, name="dispatch")
class SubscriberList(SubscriberAPIView, generics.ListCreateAPIView):  # type: ignore[type-arg]
    """List and create new subscriptions for the currently logged in user."""

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        # List pages leave the secrets out; the answer to a POST has it.
        if self.request is not None and self.request.method in SAFE_METHODS:
            return SubscriberSummarySerializer
        return self.serializer_class

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        subscriber = serializer.save(user=self.request.user)
        logger.info(
            "subscription %s to %r created by user %s",
            subscriber.uuid,
            subscriber.event,
            self.request.user.pk,
        )


@extend_schema_view(
    get=extend_schema(
        operation_id="webhook_subscriptions_retrieve",
        summary="Show a subscription",
        description="One of the user's subscriptions, with its secret.",
        tags=_TAGS,
        parameters=[_UUID],
        responses={200: SubscriberSerializer, **_ERRORS, **_NOT_FOUND},
    ),
    put=extend_schema(
        operation_id="webhook_subscriptions_update",
        summary="Replace a subscription",
        tags=_TAGS,
        parameters=[_UUID],
        request=SubscriberSerializer,
        responses={
            200: SubscriberSerializer,
            **_INVALID,
            **_ERRORS,
            **_NOT_FOUND,
        },
    ),
    patch=extend_schema(
        operation_id="webhook_subscriptions_partial_update",
        summary="Change some fields of a subscription",
        tags=_TAGS,
        parameters=[_UUID],
        request=SubscriberSerializer,
        responses={
            200: SubscriberSerializer,
            **_INVALID,
            **_ERRORS,
            **_NOT_FOUND,
        },
    ),
    delete=extend_schema(
        operation_id="webhook_subscriptions_destroy",
        summary="Unsubscribe",
        tags=_TAGS,
        parameters=[_UUID],
        responses={
            204: OpenApiResponse(description="Deleted."),
            **_ERRORS,
            **_NOT_FOUND,
        },
    ),
)
@method_decorator(_SECRET_POST_PARAMETER, name="dispatch")
class SubscriberDetail(SubscriberAPIView, generics.RetrieveUpdateDestroyAPIView):  # type: ignore[type-arg]
    """Update, delete or get details for specific subscription.

    The user must be logged in, and only sees the subscriptions they own:
    another user's answers 404, as if it did not exist.
    """

    lookup_field = "uuid"

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        subscriber = serializer.save()
        logger.info(
            "subscription %s changed by user %s", subscriber.uuid, self.request.user.pk
        )

    def perform_destroy(self, instance: Any) -> None:
        uuid = instance.uuid
        instance.delete()
        logger.info("subscription %s deleted by user %s", uuid, self.request.user.pk)
