"""DRF serializers: a subscription as the REST API reads and writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from thorn import signals
from thorn.app import current_app
from thorn.conf import event_choices
from thorn.exceptions import ConnectionFailed, ImproperlyConfigured, ThornError
from thorn.matchers import PayloadFilter
from thorn.subscribers import validate_pattern
from thorn.validators import validate_recipient

__all__ = [
    "EventPatternField",
    "LazySubscriberModel",
    "PatternedField",
    "PayloadFiltersField",
    "RecipientURLField",
    "SecretField",
    "SubscriberErrorSerializer",
    "SubscriberSerializer",
    "SubscriberSummarySerializer",
    "SubscriberValidationErrorSerializer",
    "SubscriptionURLField",
    "subscriber_model",
]

#: Longest event pattern (``thorn.subscribers.validate_pattern`` refuses more).
EVENT_MAX_LENGTH = 255
#: Longest URL (the model's column is this wide).
URL_MAX_LENGTH = 2048
#: Shortest and longest secret a user may choose.
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 255

#: What ``validate_pattern`` accepts, for the OpenAPI schema: dot-separated
#: words where ``*`` is a whole word, and no word holds a control character
#: or a character ``str.isspace`` calls white space (listed out, as regex
#: engines disagree on what ``\s`` means).
_WORD = r"[^.*\x00-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
EVENT_PATTERN_REGEX = rf"^(?:\*|{_WORD})(?:\.(?:\*|{_WORD}))*$"
#: Schemes of the URLs Thorn can deliver to (the validators may refuse more).
URL_PATTERN_REGEX = r"^https?://"
#: A secret is printable: no control characters.
PRINTABLE_PATTERN_REGEX = r"^[^\x00-\x1f\x7f]*$"


def subscriber_model() -> type[models.Model]:
    """The model ``THORN_SUBSCRIBER_MODEL`` names, looked up when called."""
    model = current_app().Subscriber
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise ImproperlyConfigured(
            f"the REST API needs a Django subscriber model, got {model!r}: add "
            "'thorn.django' to INSTALLED_APPS or set THORN_SUBSCRIBER_MODEL"
        )
    return model


class LazySubscriberModel:
    """``Meta.model`` / ``View.model``: the subscriber model, read at use time.

    ``THORN_SUBSCRIBER_MODEL`` may change (``override_settings``), and reading
    it when this module is imported would touch the app registry too early.
    """

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        return subscriber_model()


def _one_of(choices: Any) -> str:
    return ", ".join(str(choice) for choice in choices)


def _sentence(text: str) -> str:
    """``text`` as an error message: capital first letter, final full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _has_field(model: type[models.Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def detail_url(subscriber: Any, request: HttpRequest | None) -> str:
    """The absolute URL of ``subscriber``'s detail endpoint.

    Reversed in the namespace the current request came through, so the API
    can be mounted under any prefix and namespace (``webhook`` by default).
    """
    match = getattr(request, "resolver_match", None)
    namespace = "webhook"
    if match is not None and match.app_names[-1:] == ["webhook"]:
        namespace = match.namespace  # e.g. "api:webhook", or another instance
    path = reverse(f"{namespace}:detail", kwargs={"uuid": subscriber.uuid})
    return request.build_absolute_uri(path) if request is not None else path


class EventPatternField(serializers.CharField):
    """An event name or pattern (``article.*``); its schema follows the settings."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", EVENT_MAX_LENGTH)
        super().__init__(**kwargs)


class EventPatternFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """Schema of :class:`EventPatternField`: ``THORN_EVENT_CHOICES`` if set."""

    target_class = EventPatternField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        choices = event_choices()
        if choices:
            return {
                "type": "string",
                "enum": list(choices),
                "description": "One of the events this server offers.",
            }
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.target.max_length or EVENT_MAX_LENGTH,
            "pattern": EVENT_PATTERN_REGEX,
            "description": (
                "Event name or pattern of dot-separated words; '*' stands for "
                "one word, or for one or more words at the end "
                "(article.*, *.created, article.created)."
            ),
        }


class PatternedField(serializers.Field):  # type: ignore[type-arg]
    """A field whose OpenAPI schema carries ``schema_pattern``."""

    schema_pattern: str = ""


class PatternedFieldSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """Schema of a :class:`PatternedField`: the usual one, plus its pattern."""

    target_class = PatternedField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        schema["pattern"] = self.target.schema_pattern
        return schema


class RecipientURLField(PatternedField, serializers.URLField):
    """The URL webhooks go to (checked by the recipient validators)."""

    schema_pattern = URL_PATTERN_REGEX


class SecretField(PatternedField, serializers.CharField):
    """An HMAC secret: printable, kept exactly as typed."""

    schema_pattern = PRINTABLE_PATTERN_REGEX


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {},
        "description": (
            "Payload filters: dotted field paths mapped to a value that must be "
            'equal, or to a matcher such as {"match": "startswith", "value": "J"} '
            "(any, is, startswith, endswith, contains, like). The webhook is "
            "only sent when every filter matches. {} matches every payload."
        ),
    }
)
class PayloadFiltersField(serializers.JSONField):
    """Durian-style payload filters, kept in their canonical JSON form."""


@extend_schema_field(
    {
        "type": "string",
        "format": "uri",
        "description": "Absolute URL of this subscription (GET, PUT, PATCH, DELETE).",
    }
)
class SubscriptionURLField(serializers.Field):  # type: ignore[type-arg]
    """The absolute URL of the subscription's detail endpoint (read-only)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        kwargs.setdefault("source", "*")
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return detail_url(value, self.context.get("request"))


def _check_json_text(value: object, path: str = "") -> None:
    """Refuse text a database cannot store in JSON (NUL, lone surrogates)."""
    texts: list[object] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            texts.append(key)
            _check_json_text(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json_text(item, f"{path}.{index}" if path else str(index))
    else:
        texts.append(value)
    for text in texts:
        if isinstance(text, str) and (
            "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)
        ):
            where = f" at {path!r}" if path else ""
            raise serializers.ValidationError(
                f"Text{where} contains a NUL character or a lone surrogate; "
                "send valid Unicode text."
            )


@extend_schema_serializer(
    description=(
        "A webhook subscription: events whose name matches `event` are POSTed "
        "to `url`, signed with `hmac_secret`."
    )
)
class SubscriberSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """Serializer for Subscriber.

    ``id`` is the subscription's UUID; ``subscription`` the absolute URL to
    read, change or delete it. Unknown fields are refused (a misspelled
    ``hmac_digets`` would otherwise be ignored in silence); the read-only
    fields may be sent back, and are ignored.
    """

    id = serializers.UUIDField(source="uuid", read_only=True)
    event = EventPatternField()
    url = RecipientURLField(
        max_length=URL_MAX_LENGTH,
        help_text="Where the webhooks are POSTed.",
        error_messages={
            "invalid": "Enter a full URL, such as https://example.com/hooks/article.",
            "max_length": f"Use a URL of at most {URL_MAX_LENGTH} characters.",
        },
    )
    subscription = SubscriptionURLField()
    hmac_secret = SecretField(
        required=False,
        min_length=SECRET_MIN_LENGTH,
        max_length=SECRET_MAX_LENGTH,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text=(
            f"HMAC key that signs each webhook ({SECRET_MIN_LENGTH} to "
            f"{SECRET_MAX_LENGTH} characters); a random one of 64 characters "
            "is generated when left out."
        ),
        error_messages={
            "min_length": (
                f"Use a secret of at least {SECRET_MIN_LENGTH} characters, or "
                "leave hmac_secret out to have one generated."
            ),
            "max_length": f"Use a secret of at most {SECRET_MAX_LENGTH} characters.",
            "blank": "Give a secret, or leave hmac_secret out to have one generated.",
        },
    )
    payload_filters = PayloadFiltersField(required=False)

    class Meta:
        """Serializer configuration."""

        model = LazySubscriberModel()
        fields: tuple[str, ...] = (
            "event",
            "url",
            "content_type",
            "user",
            "id",
            "created_at",
            "updated_at",
            "subscription",
            "hmac_secret",
            "hmac_digest",
            # Thorn 2 additions.
            "active",
            "payload_filters",
        )
        read_only_fields = ("id", "created_at", "updated_at", "subscription", "user")

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        for name in ("content_type", "hmac_digest"):
            field = fields.get(name)
            if isinstance(field, serializers.ChoiceField):
                field.error_messages["invalid_choice"] = (
                    f'"{{input}}" is not a valid {name}; use one of: '
                    f"{_one_of(field.choices)}."
                )
        return fields

    # -- whole-object checks ------------------------------------------------

    @sensitive_variables("data")
    def to_internal_value(self, data: Any) -> Any:
        unknown = self._unknown_fields(data)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                exc.detail.update(
                    serializers.ValidationError(unknown).detail  # type: ignore[arg-type]
                )
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value

    def _unknown_fields(self, data: Any) -> dict[str, list[str]]:
        if not isinstance(data, Mapping):
            return {}
        known = set(self.fields)
        accepted = _one_of(
            name for name, field in self.fields.items() if not field.read_only
        )
        return {
            str(name): [f"Unknown field; the fields you can set are: {accepted}."]
            for name in data
            if name not in known
        }

    # -- field checks -------------------------------------------------------------

    def validate_event(self, value: str) -> str:
        try:
            validate_pattern(value)
        except ValueError as exc:
            raise serializers.ValidationError(_sentence(str(exc))) from None
        choices = event_choices()
        if choices is not None and value not in choices:
            raise serializers.ValidationError(
                f"{value!r} is not an event you can subscribe to; use one of: "
                f"{_one_of(choices)}."
            )
        return value

    def validate_url(self, value: str) -> str:
        app = current_app()
        try:
            validate_recipient(value, app.recipient_validators, resolver=app.resolver)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        except ConnectionFailed as exc:
            raise serializers.ValidationError(
                f"{_sentence(str(exc))} Check the host name, or try again later."
            ) from None
        except (ThornError, ValueError) as exc:
            # Built-in validators name the rule and the way out ("use 'https'",
            # "webhooks may only go to public addresses"); the URL in the
            # message is shown without its password.
            raise serializers.ValidationError(_sentence(str(exc))) from None
        return value

    @sensitive_variables("value")
    def validate_hmac_secret(self, value: str) -> str:
        # Control characters survive neither copy and paste nor a config
        # file, so a receiver could never store the secret it is shown.
        # (Messages never repeat the secret.)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise serializers.ValidationError(
                "The secret contains control characters; use printable ones."
            )
        return value

    def validate_payload_filters(self, value: Any) -> dict[str, Any]:
        _check_json_text(value)
        try:
            return PayloadFilter.from_json(value).to_json()
        except ValueError as exc:
            raise serializers.ValidationError(
                _sentence(f"Invalid payload filter: {exc}")
            ) from None

    # -- saving -----------------------------------------------------------------

    @sensitive_variables("validated_data")
    def create(self, validated_data: dict[str, Any]) -> Any:
        self._keep_disabled_fields_in_step(validated_data, was_active=True)
        return super().create(validated_data)

    @sensitive_variables("validated_data")
    def update(self, instance: Any, validated_data: dict[str, Any]) -> Any:
        was_active = getattr(instance, "active", True)
        self._keep_disabled_fields_in_step(validated_data, was_active=was_active)
        instance = super().update(instance, validated_data)
        # As the model's enable() and disable() do: say so.
        active = getattr(instance, "active", True)
        if active and not was_active:
            self._resume(instance)
            signals.send(signals.subscriber_enabled, instance)
        elif was_active and not active:
            reason = getattr(instance, "disabled_reason", "")
            signals.send(signals.subscriber_disabled, instance, reason=reason)
        return instance

    @staticmethod
    def _resume(instance: Any) -> None:
        # As Subscriber.enable(): its deliveries waiting in the outbox are
        # due now (only Thorn's own model has deliveries).
        from ..models import Subscriber
        from ..store import DjangoOutboxStore

        if isinstance(instance, Subscriber) and instance.pk is not None:
            DjangoOutboxStore(using=instance._state.db).resume_subscriber(instance)

    def _keep_disabled_fields_in_step(
        self, validated_data: dict[str, Any], *, was_active: bool
    ) -> None:
        # As the model's enable() and disable() do: turning a subscription
        # back on forgets why it was turned off (say a 410 Gone), turning it
        # off says who did.
        active = validated_data.get("active")
        if active is None or active == was_active:
            return
        model = self.Meta.model
        if _has_field(model, "disabled_reason"):
            validated_data["disabled_reason"] = (
                "" if active else "turned off by its owner through the API"
            )
        if _has_field(model, "disabled_at"):
            validated_data["disabled_at"] = None if active else timezone.now()
        if _has_field(model, "failing_since"):
            # A run of failures ends with either change (as in the model).
            validated_data["failing_since"] = None


class SubscriberSummarySerializer(SubscriberSerializer):
    """A subscription as list pages show it: everything but ``hmac_secret``."""

    class Meta(SubscriberSerializer.Meta):
        """Serializer configuration: the secret stays off list pages."""

        fields = tuple(
            name for name in SubscriberSerializer.Meta.fields if name != "hmac_secret"
        )


class SubscriberErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Schema of a 401, 403 or 404 answer."""

    detail = serializers.CharField(help_text="What went wrong.")


class SubscriberValidationErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Schema of a 400 answer: messages keyed by the field they are about."""

    event = serializers.ListField(child=serializers.CharField(), required=False)
    url = serializers.ListField(child=serializers.CharField(), required=False)
    content_type = serializers.ListField(child=serializers.CharField(), required=False)
    hmac_secret = serializers.ListField(child=serializers.CharField(), required=False)
    hmac_digest = serializers.ListField(child=serializers.CharField(), required=False)
    active = serializers.ListField(child=serializers.CharField(), required=False)
    payload_filters = serializers.ListField(
        child=serializers.CharField(), required=False
    )
    non_field_errors = serializers.ListField(
        child=serializers.CharField(), required=False
    )
    detail = serializers.CharField(
        required=False, help_text="Set instead when the body cannot be parsed."
    )
