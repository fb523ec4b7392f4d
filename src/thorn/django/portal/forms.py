"""The portal's forms: a subscription, and its payload filters as rows.

Every value is checked by the REST API's serializer (its fields and its
``validate_*`` methods), so the portal and the API accept the same
subscriptions and say the same things about the ones they refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.forms.formsets import BaseFormSet, formset_factory

from ...matchers import Is, PayloadFilter
from ..models import (
    CONTENT_TYPE_CHOICES,
    DIGEST_CHOICES,
    Subscriber,
    subscriber_event_choices,
)

__all__ = [
    "MATCH_CHOICES",
    "FilterFormSet",
    "FilterRowForm",
    "SubscriptionForm",
    "api_clean",
    "filter_rows",
    "parse_is_value",
    "show_is_value",
]

#: The matchers a filter row offers (durian's matching classes), as
#: ``(name in the JSON form, what the page says)``.
MATCH_CHOICES = [
    ("is", "is (equal to)"),
    ("startswith", "starts with"),
    ("endswith", "ends with"),
    ("contains", "contains"),
    ("like", "matches the regular expression"),
    ("any", "is anything (even missing)"),
]
#: The most filter rows one subscription may have.
MAX_FILTERS = 20


def _messages(detail: Any) -> list[str]:
    """The messages of a DRF error detail, flattened."""
    if isinstance(detail, Mapping):
        return [m for value in detail.values() for m in _messages(value)]
    if isinstance(detail, list | tuple):
        return [m for value in detail for m in _messages(value)]
    return [str(detail)]


def api_clean(name: str, value: Any) -> Any:
    """``value`` cleaned as the REST API cleans field ``name``.

    Runs the serializer's field (type, length, choices) and then its
    ``validate_<name>`` method (event choices, recipient validators,
    payload filters).

    Raises:
        ValidationError: with the API's messages.
    """
    from rest_framework import serializers

    from ..rest_framework.serializers import SubscriberSerializer

    serializer = SubscriberSerializer()
    try:
        value = serializer.fields[name].run_validation(value)
        check = getattr(serializer, f"validate_{name}", None)
        if check is not None:
            value = check(value)
    except serializers.ValidationError as exc:
        raise ValidationError(_messages(exc.detail)) from None
    return value


def parse_is_value(text: str) -> Any:
    """The value an "is" row compares with: JSON if it parses, else the text.

    ``3`` is the number, ``true`` the boolean, ``"3"`` the text 3, and
    ``PUBLISHED`` (not JSON) the text as typed.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def show_is_value(value: Any) -> str:
    """How an "is" row shows ``value``, so that :func:`parse_is_value` reads it back."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, ensure_ascii=False)


def filter_rows(payload_filters: Any) -> list[dict[str, str]]:
    """Stored payload filters as the initial data of filter rows."""
    try:
        parsed = PayloadFilter.from_json(payload_filters or None)
    except ValueError:
        return []
    rows = []
    for path, matcher in parsed.items():
        data = matcher.to_dict()
        if isinstance(matcher, Is):
            value = show_is_value(matcher.pattern)
        else:
            value = "" if "value" not in data else str(data["value"])
        rows.append({"field": path, "match": matcher.name, "value": value})
    return rows


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


class FilterRowForm(forms.Form):
    """One payload filter: a field path, a matcher, a value."""

    field = forms.CharField(
        label="Field",
        required=False,
        max_length=255,
        help_text="A path into the payload, e.g. data.state.",
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )
    match = forms.ChoiceField(label="Matcher", choices=MATCH_CHOICES, initial="is")
    value = forms.CharField(
        label="Value",
        required=False,
        max_length=1000,
        strip=False,
        help_text='For "is", 3, true and null are JSON; other text is taken as '
        'typed ("3" is the text 3).',
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        path = (data.get("field") or "").strip()
        match = data.get("match")
        raw = data.get("value") or ""
        data["path"] = path
        data["spec"] = None
        if not path:
            if raw.strip():
                self.add_error(
                    "field", "Give the field this value is for, e.g. data.state."
                )
            return data
        try:
            PayloadFilter.from_json({path: {"match": "any"}})
        except ValueError as exc:
            self.add_error("field", _sentence(str(exc)))
            return data
        if match is None:
            return data  # the choice field has said what is wrong
        spec: dict[str, Any] = {"match": match}
        if match == "any":
            if raw.strip():
                self.add_error(
                    "value", '"Is anything" takes no value: leave the value empty.'
                )
                return data
        elif not raw:
            self.add_error(
                "value",
                'Give a value to compare with (for "is", "" is the empty text).',
            )
            return data
        else:
            spec["value"] = parse_is_value(raw) if match == "is" else raw
        try:
            PayloadFilter.from_json({path: spec})
        except ValueError as exc:
            message = str(exc).removeprefix(f"field {path!r}: ")
            self.add_error("value", _sentence(message))
            return data
        data["spec"] = spec
        return data


if TYPE_CHECKING:
    _RowFormSet = BaseFormSet[FilterRowForm]
else:  # Django's class cannot be subscripted at run time
    _RowFormSet = BaseFormSet


class BaseFilterFormSet(_RowFormSet):
    """Filter rows; valid when each row is and no field has two rows."""

    #: The cleaned filters in their JSON form (set by a successful clean).
    payload_filters: dict[str, Any]

    def clean(self) -> None:
        self.payload_filters = {}
        if any(self.errors):
            return
        spec: dict[str, Any] = {}
        for form in self.forms:
            row = getattr(form, "cleaned_data", None) or {}
            path = row.get("path")
            if not path or row.get("spec") is None:
                continue
            if path in spec:
                form.add_error(
                    "field", "Another row already filters this field: use one."
                )
                continue
            spec[path] = row["spec"]
        if any(self.errors):
            return
        self.payload_filters = api_clean("payload_filters", spec)


FilterFormSet = cast(
    "type[BaseFilterFormSet]",
    formset_factory(
        FilterRowForm,
        formset=BaseFilterFormSet,
        extra=2,
        max_num=MAX_FILTERS,
        validate_max=True,
        absolute_max=MAX_FILTERS + 10,
    ),
)


class SubscriptionForm(forms.Form):
    """The settings of a subscription a user may change.

    Each field is a plain text or select input here; the REST API's
    serializer does the checking (see :func:`api_clean`).
    """

    event = forms.CharField(
        label="Event",
        help_text="An event name, or a pattern of dot-separated words where * "
        "stands for one word, or for the rest: article.*, *.created, "
        "article.created.",
        widget=forms.TextInput(attrs={"spellcheck": "false"}),
    )
    url = forms.CharField(
        label="Endpoint URL",
        help_text="Where the webhooks are POSTed.",
        widget=forms.URLInput(
            attrs={
                "placeholder": "https://example.com/hooks",
                "spellcheck": "false",
                "autocomplete": "url",
            }
        ),
    )
    content_type = forms.CharField(
        label="Content type",
        initial=CONTENT_TYPE_CHOICES[0][0],
        widget=forms.Select(choices=CONTENT_TYPE_CHOICES),
    )
    hmac_digest = forms.CharField(
        label="Hook-HMAC digest",
        initial="sha256",
        help_text="The hash of the Hook-HMAC signature (webhook-signature is "
        "always SHA-256).",
        widget=forms.Select(choices=DIGEST_CHOICES),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = subscriber_event_choices()
        if choices:
            field = self.fields["event"]
            field.help_text = "The event, or group of events, to receive."
            field.widget = forms.Select(
                choices=[("", "Choose an event"), *choices],
            )

    def clean_event(self) -> Any:
        return api_clean("event", self.cleaned_data["event"])

    def clean_url(self) -> Any:
        return api_clean("url", self.cleaned_data["url"])

    def clean_content_type(self) -> Any:
        return api_clean("content_type", self.cleaned_data["content_type"])

    def clean_hmac_digest(self) -> Any:
        return api_clean("hmac_digest", self.cleaned_data["hmac_digest"])

    @classmethod
    def initial_of(cls, subscriber: Subscriber) -> dict[str, Any]:
        """The form's initial data for an existing subscription."""
        return {
            "event": subscriber.event,
            "url": subscriber.url,
            "content_type": subscriber.content_type,
            "hmac_digest": subscriber.hmac_digest,
        }

    def apply(self, subscriber: Subscriber, payload_filters: dict[str, Any]) -> None:
        """Copy the cleaned values onto ``subscriber`` (unsaved)."""
        data = self.cleaned_data
        subscriber.event = data["event"]
        subscriber.url = data["url"]
        subscriber.content_type = data["content_type"]
        subscriber.hmac_digest = data["hmac_digest"]
        subscriber.payload_filters = payload_filters
