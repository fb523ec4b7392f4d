"""Django admin for subscribers: secrets are never listed, only rotated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Field, QuerySet
from django.forms import Field as FormField
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import Subscriber, generate_secret

__all__ = ["SubscriberAdmin"]

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Subscriber]
else:  # ModelAdmin is generic for type checkers only
    _ModelAdmin = admin.ModelAdmin

#: How many trailing characters of a secret the change form shows.
SHOWN_SECRET_CHARS = 4


@admin.register(Subscriber)
class SubscriberAdmin(_ModelAdmin):
    """Subscribers: list, filter, search; disable, enable, rotate secrets.

    The secret is not a form field: the change form shows only its last
    characters, and the "rotate secret" action replaces it.
    """

    list_display = [
        "event",
        "shown_url",
        "user",
        "active",
        "content_type",
        "created_at",
    ]
    list_filter = ["active", "content_type", "hmac_digest", "event"]
    search_fields = ["event", "url"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    exclude = ["hmac_secret"]
    readonly_fields = [
        "uuid",
        "masked_secret",
        "disabled_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["uuid", "event", "url", "content_type", "user"]}),
        (_("Signing"), {"fields": ["hmac_digest", "masked_secret"]}),
        (_("State"), {"fields": ["active", "disabled_reason", "disabled_at"]}),
        (_("Filters"), {"fields": ["payload_filters"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["disable_subscribers", "enable_subscribers", "rotate_secrets"]

    def formfield_for_dbfield(
        self, db_field: Field[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> FormField | None:
        if db_field.name == "url":
            # Webhook URLs are written in full; a bare host means HTTPS.
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("URL"), ordering="url")
    def shown_url(self, obj: Subscriber) -> str:
        return obj.redacted_url

    @admin.display(description=_("HMAC secret"))
    def masked_secret(self, obj: Subscriber) -> str:
        secret = obj.hmac_secret or ""
        if len(secret) <= SHOWN_SECRET_CHARS * 4:
            # Too short to show any of it safely.
            return "•" * 8 if secret else "—"
        return "•" * 8 + secret[-SHOWN_SECRET_CHARS:]

    @admin.action(description=_("Disable selected subscribers"), permissions=["change"])
    def disable_subscribers(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> None:
        who = getattr(request.user, "get_username", lambda: "")()
        count = queryset.filter(active=True).update(
            active=False,
            disabled_reason=f"disabled in the admin by {who}"[:255],
            disabled_at=timezone.now(),
            updated_at=timezone.now(),
        )
        self.message_user(
            request,
            ngettext(
                "Disabled %(count)d subscriber.",
                "Disabled %(count)d subscribers.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Enable selected subscribers"), permissions=["change"])
    def enable_subscribers(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> None:
        count = queryset.update(
            active=True,
            disabled_reason="",
            disabled_at=None,
            updated_at=timezone.now(),
        )
        self.message_user(
            request,
            ngettext(
                "Enabled %(count)d subscriber.",
                "Enabled %(count)d subscribers.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(
        description=_("Rotate the secret of selected subscribers"),
        permissions=["change"],
    )
    def rotate_secrets(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> None:
        count = 0
        # One secret per subscriber: a bulk update would share one.
        for pk in queryset.values_list("pk", flat=True):
            Subscriber.objects.filter(pk=pk).update(
                hmac_secret=generate_secret(), updated_at=timezone.now()
            )
            count += 1
        self.message_user(
            request,
            ngettext(
                "Gave %(count)d subscriber a new secret; its owner must "
                "verify signatures with the new one.",
                "Gave %(count)d subscribers new secrets; their owners must "
                "verify signatures with the new ones.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
