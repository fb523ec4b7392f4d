"""Django models of webhooks: the stored subscriber, and the outbox of deliveries."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.forms import CharField as FormCharField
from django.forms import ChoiceField as FormChoiceField
from django.forms import Field as FormField
from django.urls import NoReverseMatch
from django.utils import timezone
from django.utils.choices import BaseChoiceIterator, CallableChoiceIterator
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from .. import signals
from ..exceptions import ConnectionFailed
from ..matchers import PayloadFilter
from ..request import new_id
from ..subscribers import AbstractSubscriber, validate_pattern
from ..transport.url import InvalidURL, parse_url
from ..utils.hmac import random_secret
from .managers import SubscriberManager

__all__ = [
    "CONTENT_TYPE_CHOICES",
    "DIGEST_CHOICES",
    "Attempt",
    "Delivery",
    "DeliveryStatus",
    "EventField",
    "IdField",
    "Message",
    "Subscriber",
    "cancel_pending_deliveries",
    "generate_secret",
    "redact_url",
    "subscriber_event_choices",
    "validate_event_pattern",
]

logger = logging.getLogger(__name__)

CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_FORM = "application/x-www-form-urlencoded"
CONTENT_TYPE_CHOICES = [
    (CONTENT_TYPE_JSON, "JSON (application/json)"),
    (CONTENT_TYPE_FORM, "Form (application/x-www-form-urlencoded)"),
]
DIGEST_CHOICES = [("sha1", "SHA-1"), ("sha256", "SHA-256"), ("sha512", "SHA-512")]
#: Length of the secrets made for new subscribers.
SECRET_LENGTH = 64


def redact_url(url: str) -> str:
    """``url`` with any password in it masked (for lists and logs)."""
    try:
        return parse_url(url).redacted()
    except InvalidURL:
        return "<invalid URL>"


def generate_secret() -> str:
    """A new random HMAC secret of ``SECRET_LENGTH`` characters."""
    return random_secret(SECRET_LENGTH)


def subscriber_event_choices() -> list[tuple[str, str]]:
    """``THORN_EVENT_CHOICES`` as ``(value, label)`` pairs, read when called.

    The model's ``event`` field takes this function as its choices, so the
    setting can change without changing the migrations. No setting gives
    an empty list: then any valid pattern is accepted.
    """
    from ..app import current_app

    spec = current_app().settings.THORN_EVENT_CHOICES
    if not spec:
        return []
    pairs: list[tuple[str, str]] = []
    for choice in spec:
        if isinstance(choice, (tuple, list)):
            value, label = choice
            pairs.append((str(value), str(label)))
        else:
            pairs.append((str(choice), str(choice)))
    return pairs


def validate_event_pattern(value: str) -> None:
    """Django validator: ``value`` must be a subscription pattern."""
    try:
        validate_pattern(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_pattern") from None


class EventChoices(CallableChoiceIterator):
    """Choices made by a function, false when it makes none.

    Django treats a field whose ``choices`` are set as a choice field even
    when they come out empty; being false lets the field, the admin and
    Django REST framework treat "no ``THORN_EVENT_CHOICES``" as free text.
    """

    def __bool__(self) -> bool:
        return any(True for _choice in self)


class EventField(models.CharField):  # type: ignore[type-arg]
    """The ``event`` pattern column: choices from a function, maybe none."""

    def __init__(self, *args: Any, choices: Any = None, **kwargs: Any) -> None:
        if callable(choices) and not isinstance(choices, BaseChoiceIterator):
            choices = EventChoices(choices)
        kwargs["choices"] = choices
        super().__init__(*args, **kwargs)

    def validate(self, value: Any, model_instance: models.Model | None) -> None:
        if self.choices:
            super().validate(value, model_instance)
            return
        # No choices configured: Field.validate would refuse every value, so
        # make only its other checks (the validators check the pattern).
        if value is None and not self.null:
            raise ValidationError(self.error_messages["null"], code="null")
        if not self.blank and value in self.empty_values:
            raise ValidationError(self.error_messages["blank"], code="blank")

    def formfield(
        self,
        form_class: type[FormField] | None = None,
        choices_form_class: type[FormChoiceField] | None = None,
        **kwargs: Any,
    ) -> FormField | None:
        if self.choices:
            return super().formfield(
                form_class=form_class, choices_form_class=choices_form_class, **kwargs
            )
        defaults: dict[str, Any] = {
            "required": not self.blank,
            "label": capfirst(self.verbose_name),
            "help_text": self.help_text,
            "max_length": self.max_length,
        }
        defaults.update(kwargs)
        return (form_class or FormCharField)(**defaults)


def _refuse_every_payload(payload: Any) -> bool:
    return False


class Subscriber(models.Model):
    """A stored subscription: ``event`` pattern, ``url``, and how to sign."""

    uuid = models.UUIDField(_("UUID"), default=uuid.uuid4, unique=True, editable=False)
    event = EventField(
        _("event pattern"),
        max_length=255,
        choices=subscriber_event_choices,
        validators=[validate_event_pattern],
        help_text=_(
            "Event name or pattern of dot-separated words, e.g. 'article.created', "
            "'article.*', '*.created' or '*'."
        ),
    )
    url = models.URLField(
        _("URL"),
        max_length=2048,
        help_text=_("Where the webhooks are posted."),
    )
    content_type = models.CharField(
        _("content type"),
        max_length=128,
        choices=CONTENT_TYPE_CHOICES,
        default=CONTENT_TYPE_JSON,
    )
    # AUTH_USER_MODEL is the one setting a model must read when it is
    # defined: Django's swappable models are built on it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="thorn_subscribers",
        verbose_name=_("user"),
        help_text=_("Only events sent by this user are delivered; empty: all."),
    )
    hmac_secret = models.CharField(
        _("HMAC secret"),
        max_length=255,
        default=generate_secret,
        help_text=_("Key of the request signatures; a random one by default."),
    )
    hmac_digest = models.CharField(
        _("HMAC digest"),
        max_length=16,
        choices=DIGEST_CHOICES,
        default="sha256",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("Inactive subscribers receive nothing."),
    )
    disabled_reason = models.CharField(
        _("disabled because"), max_length=255, blank=True
    )
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    payload_filters = models.JSONField(
        _("payload filters"),
        default=dict,
        blank=True,
        help_text=_(
            'Deliver only payloads that match, e.g. {"data.state": "PUBLISHED", '
            '"data.name": {"match": "startswith", "value": "J"}}.'
        ),
    )
    previous_secret = models.CharField(
        _("previous HMAC secret"),
        max_length=255,
        blank=True,
        default="",
        editable=False,
        help_text=_(
            "After a rotation the old secret also signs (Standard Webhooks) "
            "until previous_secret_until."
        ),
    )
    previous_secret_until = models.DateTimeField(
        _("previous secret signs until"), null=True, blank=True, editable=False
    )
    failing_since = models.DateTimeField(
        _("failing since"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "When its deliveries started failing without a success since; "
            "THORN_AUTO_DISABLE_AFTER later it is disabled."
        ),
    )

    objects = SubscriberManager()

    class Meta:
        db_table = "thorn_subscriber"
        # created_at alone ties for rows made in one bulk insert.
        ordering = ["-created_at", "-id"]
        verbose_name = _("subscriber")
        verbose_name_plural = _("subscribers")
        indexes = [
            # Serves matching(): event IN (candidates) AND active. A lone
            # index on event would repeat its first column.
            models.Index(fields=["event", "active"], name="thorn_sub_event_active_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} -> {self.redacted_url}"

    # -- what the dispatcher reads ---------------------------------------------------

    @property
    def redacted_url(self) -> str:
        """The URL with any password in it masked (for lists and logs)."""
        return redact_url(self.url)

    @property
    def filters(self) -> Callable[[Any], bool] | None:
        """The payload filter (a :class:`~thorn.matchers.PayloadFilter`), or None.

        A stored filter that no longer parses refuses every payload (and
        says so in the log) rather than delivering what it should not.
        """
        if not self.payload_filters:
            return None
        try:
            return PayloadFilter.from_json(self.payload_filters)
        except ValueError:
            logger.warning(
                "payload_filters of subscriber %s do not parse; delivering it "
                "nothing until they are fixed",
                self.uuid,
            )
            return _refuse_every_payload

    def user_ident(self) -> Any:
        """The user's primary key (no query), or None."""
        return self.user_id

    def sign(self, message: bytes | str) -> str:
        """Sign ``message`` with this subscriber's secret (``THORN_HMAC_SIGNER``)."""
        from ..app import current_app

        if not self.hmac_secret:
            raise ValueError("this subscriber has no hmac_secret to sign with")
        signature: str = current_app().hmac_sign(
            self.hmac_digest, self.hmac_secret, message
        )
        return signature

    def get_absolute_url(self) -> str | None:
        """The subscription's API URL (``webhook:detail``), if that view is routed."""
        from django.urls import reverse

        try:
            return reverse("webhook:detail", kwargs={"uuid": self.uuid})
        except NoReverseMatch:
            return None

    @property
    def subscription(self) -> str | None:
        """Same as :meth:`get_absolute_url` (the REST API's field name)."""
        return self.get_absolute_url()

    # -- plain data -----------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Dictionary representation of Subscriber (plain JSON).

        :meth:`thorn.subscribers.Subscriber.from_dict` accepts it, so a
        worker can deliver without the database.
        """
        out: dict[str, Any] = {
            "event": self.event,
            "url": self.url,
            "content_type": self.content_type,
            "hmac_secret": self.hmac_secret,
            "hmac_digest": self.hmac_digest,
            "uuid": str(self.uuid),
            "user": self.user_id,
            "active": self.active,
        }
        if self.payload_filters:
            out["filters"] = self.payload_filters
        return out

    @classmethod
    def from_dict(cls, *args: Any, **kwargs: Any) -> Subscriber:
        """Create an unsaved subscriber from :meth:`as_dict` data (args as ``dict``)."""
        data = dict(*args, **kwargs)
        unknown = set(data) - _DICT_KEYS
        if unknown:
            raise ValueError(
                f"unknown subscriber keys {sorted(unknown)}; "
                f"use only {sorted(_DICT_KEYS)}"
            )
        if "filters" in data:
            filters = data.pop("filters")
            if isinstance(filters, PayloadFilter):
                filters = filters.to_json()
            data["payload_filters"] = dict(filters or {})
        if "user" in data and not isinstance(data["user"], models.Model):
            data["user_id"] = data.pop("user")
        if isinstance(data.get("uuid"), str):
            data["uuid"] = uuid.UUID(data["uuid"])
        return cls(**data)

    # -- validation -----------------------------------------------------------------

    def clean(self) -> None:
        """Refuse URLs the recipient validators refuse, and bad payload filters."""
        super().clean()
        errors: dict[str, str | list[str]] = {}
        if self.url:
            url_error = _recipient_error(self.url)
            if url_error is not None:
                errors["url"] = url_error
        if self.payload_filters is not None and not isinstance(
            self.payload_filters, Mapping
        ):
            errors["payload_filters"] = (
                "Payload filters must be an object of field paths to matchers."
            )
        else:
            try:
                PayloadFilter.from_json(self.payload_filters or None)
            except ValueError as exc:
                errors["payload_filters"] = str(exc)
        if errors:
            raise ValidationError(errors)

    # -- operations -----------------------------------------------------------------

    def disable(self, reason: str, *, save: bool = True) -> None:
        """Stop delivering to this subscriber, saying why (kept for people).

        Its pending deliveries in the outbox wait until it is enabled again.
        """
        self.active = False
        self.disabled_reason = reason[:255]
        self.disabled_at = timezone.now()
        # A run of failures ends here: after enable() it counts afresh.
        self.failing_since = None
        if save:
            self.save(update_fields=[*_STATE_FIELDS, "updated_at"])
            signals.send(signals.subscriber_disabled, self, reason=self.disabled_reason)

    def enable(self, *, save: bool = True) -> None:
        """Deliver to this subscriber again; its waiting deliveries are due now."""
        self.active = True
        self.disabled_reason = ""
        self.disabled_at = None
        self.failing_since = None
        if save:
            self.save(update_fields=[*_STATE_FIELDS, "updated_at"])
            if self.pk is not None:
                from .store import DjangoOutboxStore

                DjangoOutboxStore(using=self._state.db).resume_subscriber(self)
            signals.send(signals.subscriber_enabled, self)

    def rotate_secret(
        self,
        *,
        overlap: datetime.timedelta | float | str | None = None,
        save: bool = True,
    ) -> None:
        """Give this subscriber a new random secret (tell its owner).

        The old secret keeps signing for ``overlap`` (default
        ``THORN_SECRET_ROTATION_OVERLAP``): each Standard Webhooks
        ``webhook-signature`` header then carries one signature per secret,
        so a receiver can switch to the new secret at any time in that
        window. ``Hook-HMAC`` is signed with the new secret only. An overlap
        of zero (or ``None`` as the setting) drops the old secret at once.
        """
        from ..app import current_app
        from .store import as_timedelta

        if overlap is None:
            overlap = current_app().settings.THORN_SECRET_ROTATION_OVERLAP
        period = (
            datetime.timedelta(0)
            if overlap is None
            else as_timedelta(overlap, setting="THORN_SECRET_ROTATION_OVERLAP")
        )
        if period > datetime.timedelta(0) and self.hmac_secret:
            self.previous_secret = self.hmac_secret
            self.previous_secret_until = timezone.now() + period
        else:
            self.previous_secret = ""
            self.previous_secret_until = None
        self.hmac_secret = generate_secret()
        if save:
            self.save(
                update_fields=[
                    "hmac_secret",
                    "previous_secret",
                    "previous_secret_until",
                    "updated_at",
                ]
            )

    @property
    def extra_secrets(self) -> tuple[str, ...]:
        """Secrets that also sign Standard Webhooks now (a rotation's overlap)."""
        return previous_secrets(
            self.previous_secret, self.previous_secret_until, timezone.now()
        )


def previous_secrets(
    secret: str | None, until: datetime.datetime | None, now: datetime.datetime
) -> tuple[str, ...]:
    """``(secret,)`` while a rotation's overlap lasts, else ``()``."""
    if secret and until is not None and until > now:
        return (secret,)
    return ()


_STATE_FIELDS = ["active", "disabled_reason", "disabled_at", "failing_since"]

_DICT_KEYS = {
    "event",
    "url",
    "content_type",
    "hmac_secret",
    "hmac_digest",
    "uuid",
    "user",
    "filters",
    "active",
    "payload_filters",
    "disabled_reason",
}


def _recipient_error(url: str) -> list[str] | None:
    """Why the current app's recipient validators refuse ``url``, or None."""
    from ..app import current_app
    from ..validators import validate_recipient

    try:
        validate_recipient(url, current_app().recipient_validators)
    except ConnectionFailed as exc:
        return [f"{exc} Check the host name: it must resolve to be accepted."]
    except ValidationError as exc:  # a user validator written for Django
        return list(exc.messages)
    except ValueError as exc:  # InvalidURL, RecipientRejected, 1.x validators
        return [str(exc)]
    return None


AbstractSubscriber.register(Subscriber)


# -- the outbox ----------------------------------------------------------------------


class DeliveryStatus(models.TextChoices):
    """Where a delivery stands: waiting for a try, or done one way or another."""

    PENDING = "pending", _("pending")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


class IdField(models.CharField):  # type: ignore[type-arg]
    """A UUID as text, always 36 characters; ``bpchar(36)`` on PostgreSQL.

    PostgreSQL gives every indexed ``varchar`` column a second index for
    ``LIKE`` (``varchar_pattern_ops``); ids are never searched that way, and
    the outbox tables take many inserts, so their id columns (and the foreign
    keys to them, which take the same type) are ``char``: one index each.
    Spelled ``bpchar``: Django's bulk insert casts to the type without its
    length, and a bare ``bpchar`` keeps every character where ``char``
    would mean ``char(1)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 36)
        super().__init__(*args, **kwargs)

    def db_type(self, connection: Any) -> str | None:
        if connection.vendor == "postgresql":
            return f"bpchar({self.max_length})"
        return super().db_type(connection)


class Message(models.Model):
    """One ``send()``: the event and its payload, shared by its deliveries."""

    id = IdField(_("id"), primary_key=True, default=new_id, editable=False)
    event = models.CharField(_("event"), max_length=255)
    data = models.TextField(
        _("payload"), blank=True, help_text=_("The payload as JSON text.")
    )
    sender = models.CharField(_("sender"), max_length=255, null=True, blank=True)
    body = models.BinaryField(
        _("body"),
        null=True,
        blank=True,
        help_text=_(
            "The encoded body its deliveries post, stored once: a delivery "
            "keeps a body of its own only when it differs (another content type)."
        ),
    )
    created_at = models.DateTimeField(
        _("created at"), default=timezone.now, db_index=True
    )

    class Meta:
        db_table = "thorn_message"
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        # Declared here rather than with db_index: PostgreSQL then makes no
        # second LIKE index.
        indexes = [models.Index(fields=["event"], name="thorn_message_event_idx")]

    def __str__(self) -> str:
        return f"{self.event} {self.id}"


def cancel_pending_deliveries(
    collector: Any, field: models.Field[Any, Any], sub_objs: Any, using: str
) -> None:
    """``on_delete`` of a delivery's subscriber: cancel what is pending, keep the log.

    Like ``SET_NULL``, plus: pending deliveries of the deleted subscriber
    become ``cancelled`` (they have nowhere to go and no secret to sign
    with). The collector runs its updates in the order they were added, and
    the first three select the pending rows by subscriber and status, so
    they come before the status and the subscriber change.
    """
    pending = sub_objs.filter(status=DeliveryStatus.PENDING)
    meta = sub_objs.model._meta
    collector.add_field_update(meta.get_field("next_attempt_at"), None, pending)
    collector.add_field_update(meta.get_field("leased_until"), None, pending)
    collector.add_field_update(
        meta.get_field("last_error"), "the subscriber was deleted", pending
    )
    collector.add_field_update(
        meta.get_field("status"), DeliveryStatus.CANCELLED, pending
    )
    collector.add_field_update(field, None, sub_objs)


# The collector may pass the related rows as a query set, unevaluated.
cancel_pending_deliveries.lazy_sub_objs = True  # type: ignore[attr-defined]


class Delivery(models.Model):
    """One message to one subscriber: what to post, and how it went so far.

    The body is stored encoded, so the engine posts it as it is. A delivery
    to a stored subscriber reads that subscriber's current URL, secret and
    digest when it is claimed (a rotated secret is used at once); one to a
    subscriber without a row here (``THORN_SUBSCRIBERS``, callbacks, another
    model) keeps a copy of its secret in ``static_secret``.
    """

    id = IdField(_("id"), primary_key=True, editable=False)
    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("message"),
    )
    subscriber = models.ForeignKey(
        Subscriber,
        on_delete=cancel_pending_deliveries,
        null=True,
        blank=True,
        related_name="deliveries",
        verbose_name=_("subscriber"),
    )
    static_subscriber = models.BooleanField(
        _("static subscriber"),
        default=False,
        help_text=_("The subscriber has no row here; its secret is copied."),
    )
    subscription = models.CharField(_("subscription"), max_length=36, blank=True)
    event = models.CharField(_("event"), max_length=255)
    url = models.TextField(_("URL"))
    content_type = models.CharField(_("content type"), max_length=128)
    body = models.BinaryField(
        _("body"),
        null=True,
        blank=True,
        help_text=_("Empty (NULL): the message's body, shared by its deliveries."),
    )
    hmac_digest = models.CharField(_("HMAC digest"), max_length=16, default="sha256")
    static_secret = models.TextField(
        _("secret of a static subscriber"), null=True, blank=True
    )
    static_extra_secrets = models.JSONField(
        _("extra secrets of a static subscriber"), default=list, blank=True
    )
    headers = models.JSONField(
        _("headers"), default=list, help_text=_("[name, value] pairs.")
    )
    timeout = models.FloatField(_("timeout"), default=3.0)
    policy = models.JSONField(_("retry policy"), default=dict)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
    )
    attempts = models.PositiveIntegerField(
        _("attempts"),
        default=0,
        help_text=_("Tries since it was queued or last replayed (the retry ladder)."),
    )
    logged_attempts = models.PositiveIntegerField(
        _("logged attempts"),
        default=0,
        editable=False,
        help_text=_("Tries in the attempt log: never reset, numbers the next one."),
    )
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    lease_owner = models.CharField(
        _("leased by"), max_length=255, null=True, blank=True
    )
    leased_until = models.DateTimeField(_("leased until"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(
        _("last status code"), null=True, blank=True
    )
    last_error = models.TextField(_("last error"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        db_table = "thorn_delivery"
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [
            # The claim query: pending rows in next_attempt_at order. Partial,
            # so finished rows (nearly all of them) cost it nothing.
            models.Index(
                fields=["status", "next_attempt_at"],
                name="thorn_delivery_due_idx",
                condition=models.Q(status="pending"),
            ),
            # Replay by subscriber, admin search (no LIKE index, as above).
            models.Index(fields=["subscription"], name="thorn_delivery_sub_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.id} -> {self.redacted_url}"

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    @property
    def payload_body(self) -> bytes:
        """The bytes this delivery posts: its own body, or its message's."""
        body = self.body if self.body is not None else self.message.body
        return bytes(body or b"")


class Attempt(models.Model):
    """One try of one delivery: when, how long, and what came back."""

    delivery = models.ForeignKey(
        Delivery,
        on_delete=models.CASCADE,
        related_name="attempt_log",
        verbose_name=_("delivery"),
        # The (delivery, number) index serves lookups by delivery.
        db_index=False,
    )
    number = models.PositiveIntegerField(_("number"))
    started_at = models.DateTimeField(_("started at"))
    duration_ms = models.FloatField(_("duration (ms)"))
    status_code = models.PositiveSmallIntegerField(
        _("status code"), null=True, blank=True
    )
    error = models.TextField(_("error"), blank=True, default="")
    response_excerpt = models.BinaryField(
        _("start of the answer"), blank=True, default=b""
    )

    class Meta:
        db_table = "thorn_attempt"
        verbose_name = _("attempt")
        verbose_name_plural = _("attempts")
        indexes = [
            models.Index(fields=["delivery", "number"], name="thorn_attempt_idx"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
