"""Django admin for subscribers and the outbox: secrets are never shown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Field, QuerySet
from django.forms import Field as FormField
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import signals
from ..request import RESERVED_HEADERS, webhook_headers
from .models import Attempt, Delivery, Message, Subscriber

__all__ = ["AttemptAdmin", "DeliveryAdmin", "MessageAdmin", "SubscriberAdmin"]

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Subscriber]
    _MessageAdmin = admin.ModelAdmin[Message]
    _DeliveryAdmin = admin.ModelAdmin[Delivery]
    _AttemptAdmin = admin.ModelAdmin[Attempt]
    _AttemptInline = admin.TabularInline[Attempt, Delivery]
else:  # ModelAdmin is generic for type checkers only
    _ModelAdmin = _MessageAdmin = _DeliveryAdmin = _AttemptAdmin = admin.ModelAdmin
    _AttemptInline = admin.TabularInline

#: How many trailing characters of a secret the change form shows.
SHOWN_SECRET_CHARS = 4


def _listened(signal: Any, queryset: QuerySet[Subscriber]) -> list[Subscriber]:
    """The subscribers an action changes, read only when ``signal`` has receivers."""
    return list(queryset) if signal.receivers else []


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
        "failing_since",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["uuid", "event", "url", "content_type", "user"]}),
        (_("Signing"), {"fields": ["hmac_digest", "masked_secret"]}),
        (
            _("State"),
            {"fields": ["active", "disabled_reason", "disabled_at", "failing_since"]},
        ),
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
        reason = f"disabled in the admin by {who}"[:255]
        changing = _listened(signals.subscriber_disabled, queryset.filter(active=True))
        count = queryset.filter(active=True).update(
            active=False,
            disabled_reason=reason,
            disabled_at=timezone.now(),
            failing_since=None,
            updated_at=timezone.now(),
        )
        for sub in changing:
            signals.send(signals.subscriber_disabled, sub, reason=reason)
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
        from .store import DjangoOutboxStore

        now = timezone.now()
        keys = list(queryset.values_list("pk", flat=True))
        changing = _listened(signals.subscriber_enabled, queryset.filter(active=False))
        count = queryset.update(
            active=True,
            disabled_reason="",
            disabled_at=None,
            failing_since=None,
            updated_at=now,
        )
        # Their deliveries that waited while they were off are due now.
        DjangoOutboxStore(using=queryset.db).resume_subscribers(keys, now=now)
        for sub in changing:
            signals.send(signals.subscriber_enabled, sub)
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
        # One secret per subscriber: a bulk update would share one. The old
        # one keeps signing for THORN_SECRET_ROTATION_OVERLAP.
        for subscriber in queryset.select_related(None).only("pk", "hmac_secret"):
            subscriber.rotate_secret()
            count += 1
        self.message_user(
            request,
            ngettext(
                "Gave %(count)d subscriber a new secret; its owner must "
                "verify signatures with the new one before the old one stops "
                "signing.",
                "Gave %(count)d subscribers new secrets; their owners must "
                "verify signatures with the new ones before the old ones stop "
                "signing.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )


# -- the outbox ------------------------------------------------------------------------

#: Headers whose values the delivery page shows; others (an extra header may
#: carry a token) show their name only.
SHOWN_HEADERS = frozenset(
    {
        "hook-event",
        "hook-delivery",
        "hook-subscription",
        "user-agent",
        "content-type",
    }
)
#: How much of a body or an answer a detail page shows.
PREVIEW_CHARS = 4000
#: How many recent messages the event filter reads its choices from.
EVENT_FILTER_SAMPLE = 1000


def _is_list(request: HttpRequest) -> bool:
    name = getattr(request.resolver_match, "url_name", None) or ""
    return name.endswith("_changelist")


def _preview(data: bytes | memoryview | None) -> str:
    raw = bytes(data or b"")
    text = raw[: PREVIEW_CHARS * 4].decode("utf-8", "replace")
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " …"


class EventListFilter(admin.SimpleListFilter):
    """Filter by event without reading the whole table for its choices.

    The choices are ``THORN_EVENT_CHOICES`` when set, else the events of the
    latest messages.
    """

    title = _("event")
    parameter_name = "event"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[Any, str]]:
        from ..conf import event_choices

        choices = event_choices()
        if choices is not None:
            names = {c for c in choices if "*" not in c}
        else:
            recent = Message.objects.order_by("-id").values_list("event", flat=True)
            names = set(recent[:EVENT_FILTER_SAMPLE])
        return [(name, name) for name in sorted(names)]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> QuerySet[Any] | None:
        value = self.value()
        if value:
            return queryset.filter(event=value)
        return queryset


class _ReadOnlyMixin:
    """Rows written by Thorn: viewed in the admin, never added or edited."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(_ReadOnlyMixin, _MessageAdmin):
    """Messages: one per send, with the payload and a link to its deliveries."""

    list_display = ["id", "event", "sender", "created_at"]
    list_filter = [EventListFilter]
    search_fields = ["=id"]
    ordering = ["-id"]
    show_full_result_count = False
    fields = readonly_fields = (
        "id",
        "event",
        "sender",
        "created_at",
        "payload",
        "delivery_list",
    )

    @admin.display(description=_("payload"))
    def payload(self, obj: Message) -> str:
        text = obj.data or ""
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + " …"

    @admin.display(description=_("deliveries"))
    def delivery_list(self, obj: Message) -> str:
        url = reverse("admin:thorn_delivery_changelist")
        return format_html(
            '<a href="{}?message__id__exact={}">{}</a>',
            url,
            obj.pk,
            _("Deliveries of this message"),
        )


class AttemptInline(_ReadOnlyMixin, _AttemptInline):
    """The attempts of one delivery, oldest first."""

    model = Attempt
    extra = 0
    can_delete = False
    ordering = ["number"]
    fields = readonly_fields = (
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
    )


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnlyMixin, _DeliveryAdmin):
    """Deliveries: state, tries, and a resend action. Bodies and secrets stay out."""

    list_display = [
        "id",
        "event",
        "subscription",
        "shown_url",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["status", EventListFilter]
    search_fields = ["=id", "=subscription", "=message__id"]
    ordering = ["-id"]
    show_full_result_count = False
    actions = ["resend"]
    inlines = [AttemptInline]
    fields = readonly_fields = (
        "id",
        "message_link",
        "event",
        "subscriber",
        "subscription",
        "shown_url",
        "content_type",
        "signing",
        "header_list",
        "body_preview",
        "timeout",
        "policy",
        "status",
        "attempts",
        "next_attempt_at",
        "lease_owner",
        "leased_until",
        "last_status_code",
        "last_error",
        "created_at",
        "updated_at",
        "completed_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        # Never read what pages do not show (the secret) or lists do not
        # show (the body, which may be large).
        query = super().get_queryset(request).defer("static_secret")
        if _is_list(request):
            query = query.defer(
                "static_secret", "static_extra_secrets", "body", "headers", "policy"
            )
        return query

    def has_resend_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.display(description=_("URL"))
    def shown_url(self, obj: Delivery) -> str:
        return obj.redacted_url

    @admin.display(description=_("message"))
    def message_link(self, obj: Delivery) -> str:
        url = reverse("admin:thorn_message_change", args=[obj.message_id])
        return format_html('<a href="{}">{}</a>', url, obj.message_id)

    @admin.display(description=_("signed with"))
    def signing(self, obj: Delivery) -> str:
        if not obj.static_subscriber:
            return str(_("the subscriber's current secret (%(digest)s)")) % {
                "digest": obj.hmac_digest
            }
        secret = Delivery.objects.filter(pk=obj.pk).values_list(
            "static_secret", flat=True
        )
        if secret.first():
            return str(_("a copy of the static subscriber's secret (hidden)"))
        return str(_("nothing: the subscriber has no secret"))

    @admin.display(description=_("headers"))
    def header_list(self, obj: Delivery) -> str:
        """What each try sends but its signatures: Thorn's own headers, made
        as the engine makes them, and the stored extras (values hidden)."""
        stored = [tuple(pair) for pair in (obj.headers or [])]
        extra = [(k, v) for k, v in stored if str(k).lower() not in RESERVED_HEADERS]
        try:
            pairs = webhook_headers(
                event=obj.event,
                delivery_id=str(obj.pk),
                content_type=obj.content_type,
                subscription=obj.subscription,
                extra=extra,
            )
        except ValueError:  # not a header the engine would send: as stored
            pairs = stored
        shown = [
            (name, value if str(name).lower() in SHOWN_HEADERS else "••••")
            for name, value in pairs
        ]
        return format_html_join("", "<div>{}: {}</div>", shown)

    @admin.display(description=_("body"))
    def body_preview(self, obj: Delivery) -> str:
        return _preview(obj.payload_body)

    @admin.action(
        description=_("Resend selected deliveries now"), permissions=["resend"]
    )
    def resend(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        from .store import DjangoOutboxStore

        ids = list(queryset.values_list("pk", flat=True))
        count = DjangoOutboxStore(using=queryset.db).replay(
            ids=ids, status="all", now=timezone.now()
        )
        self.message_user(
            request,
            ngettext(
                "Queued %(count)d delivery again; the engine sends it shortly.",
                "Queued %(count)d deliveries again; the engine sends them shortly.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
        if count < len(ids):
            self.message_user(
                request,
                ngettext(
                    "%(count)d selected delivery was left as it was: it is "
                    "still pending, or its subscriber was deleted.",
                    "%(count)d selected deliveries were left as they were: they "
                    "are still pending, or their subscriber was deleted.",
                    len(ids) - count,
                )
                % {"count": len(ids) - count},
                messages.WARNING,
            )


@admin.register(Attempt)
class AttemptAdmin(_ReadOnlyMixin, _AttemptAdmin):
    """The attempt log: one row per try, read-only."""

    list_display = [
        "delivery_id",
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "short_error",
    ]
    list_filter = ["status_code"]
    search_fields = ["=delivery__id"]
    ordering = ["-id"]
    show_full_result_count = False
    fields = readonly_fields = (
        "delivery_link",
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "answer",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        query = super().get_queryset(request)
        if _is_list(request):
            query = query.defer("response_excerpt")
        return query

    @admin.display(description=_("error"))
    def short_error(self, obj: Attempt) -> str:
        error = obj.error or ""
        return error if len(error) <= 80 else error[:80] + " …"

    @admin.display(description=_("delivery"))
    def delivery_link(self, obj: Attempt) -> str:
        url = reverse("admin:thorn_delivery_change", args=[obj.delivery_id])
        return format_html('<a href="{}">{}</a>', url, obj.delivery_id)

    @admin.display(description=_("start of the answer"))
    def answer(self, obj: Attempt) -> str:
        return _preview(obj.response_excerpt)
