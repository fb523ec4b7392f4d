"""Django models required to dispatch webhook events: the stored subscriber."""

from __future__ import annotations

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

from ..exceptions import ConnectionFailed
from ..matchers import PayloadFilter
from ..subscribers import AbstractSubscriber, validate_pattern
from ..transport.url import InvalidURL, parse_url
from ..utils.hmac import random_secret
from .managers import SubscriberManager

__all__ = [
    "CONTENT_TYPE_CHOICES",
    "DIGEST_CHOICES",
    "EventField",
    "Subscriber",
    "generate_secret",
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
        try:
            return parse_url(self.url).redacted()
        except InvalidURL:
            return "<invalid URL>"

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
        """Stop delivering to this subscriber, saying why (kept for people)."""
        self.active = False
        self.disabled_reason = reason[:255]
        self.disabled_at = timezone.now()
        if save:
            self.save(
                update_fields=["active", "disabled_reason", "disabled_at", "updated_at"]
            )

    def enable(self, *, save: bool = True) -> None:
        """Deliver to this subscriber again."""
        self.active = True
        self.disabled_reason = ""
        self.disabled_at = None
        if save:
            self.save(
                update_fields=["active", "disabled_reason", "disabled_at", "updated_at"]
            )

    def rotate_secret(self, *, save: bool = True) -> None:
        """Give this subscriber a new random secret (tell its owner)."""
        self.hmac_secret = generate_secret()
        if save:
            self.save(update_fields=["hmac_secret", "updated_at"])


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
