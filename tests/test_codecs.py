"""Tests for thorn.codecs: content types, form encoding, limits, THORN_CODECS."""

from __future__ import annotations

import base64
import json
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import pytest

from thorn.codecs import (
    DEFAULT_CODECS,
    Codecs,
    encode_form,
    encode_json,
    normalize_content_type,
)
from thorn.exceptions import ImproperlyConfigured, PayloadTooLarge, UnencodablePayload

PAYLOAD = {"event": "article.changed", "ref": "https://example.com/a/1", "n": 1}
SECRET_VALUE = "s3cr3t-v4lue-never-shown"


def form_fields(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))


def test_the_default_codecs_are_json_and_form() -> None:
    assert dict(DEFAULT_CODECS) == {
        "application/json": encode_json,
        "application/x-www-form-urlencoded": encode_form,
    }
    assert set(Codecs()) == set(DEFAULT_CODECS)


def test_json_is_encoded_as_compact_utf8_bytes() -> None:
    body = Codecs().encode(PAYLOAD, "application/json")
    assert body == json.dumps(PAYLOAD, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON", "application/json; charset=utf-8"],
)
def test_content_types_match_ignoring_case_and_parameters(content_type: str) -> None:
    codecs = Codecs()
    assert codecs.encode(PAYLOAD, content_type) == encode_json(PAYLOAD)
    assert content_type in codecs
    assert codecs[content_type] is encode_json


def test_normalize_content_type_drops_parameters_and_case() -> None:
    assert normalize_content_type(" Text/Plain ; charset=UTF-8") == "text/plain"


def test_an_unknown_content_type_is_refused_naming_the_supported_ones() -> None:
    with pytest.raises(UnencodablePayload) as excinfo:
        Codecs().encode(PAYLOAD, "application/xml")
    message = str(excinfo.value)
    assert "application/xml" in message
    assert "application/json" in message
    assert "application/x-www-form-urlencoded" in message


def test_form_encoding_of_a_flat_mapping() -> None:
    body = encode_form({"event": "a b&c=d", "n": 3, "ok": True, "none": None})
    assert body == b"event=a+b%26c%3Dd&n=3&ok=true&none="
    assert form_fields(body) == {
        "event": "a b&c=d",
        "n": "3",
        "ok": "true",
        "none": "",
    }


def test_form_encoding_writes_extra_types_as_json_would_without_quotes() -> None:
    uuid = UUID("c91fe938-55fb-4190-a5ed-bd92f5ea8339")
    body = encode_form(
        {"price": Decimal("9.90"), "day": date(2024, 1, 2), "id": uuid, "x": 1.5}
    )
    assert form_fields(body) == {
        "price": "9.90",
        "day": "2024-01-02",
        "id": str(uuid),
        "x": "1.5",
    }


def test_form_encoding_writes_nested_values_as_json_per_field() -> None:
    data = {"data": {"title": 'Hé "quoted"', "tags": ["a", "b"]}, "list": [1, 2]}
    fields = form_fields(encode_form(data))
    assert json.loads(fields["data"]) == data["data"]
    assert fields["list"] == "[1,2]"


def test_form_encoding_percent_encodes_utf8() -> None:
    assert encode_form({"name": "Ærøskøbing ☃"}) == (
        b"name=%C3%86r%C3%B8sk%C3%B8bing+%E2%98%83"
    )


@pytest.mark.parametrize("data", [[("a", 1)], "a=1", 42, None])
def test_form_encoding_needs_a_mapping(data: Any) -> None:
    with pytest.raises(UnencodablePayload, match="needs a mapping"):
        encode_form(data)


def test_form_encoding_needs_str_field_names() -> None:
    with pytest.raises(UnencodablePayload, match="field name"):
        encode_form({1: "one"})


def test_form_encoding_names_the_field_holding_an_unencodable_value() -> None:
    class Secretive:
        def __repr__(self) -> str:
            return SECRET_VALUE

    with pytest.raises(UnencodablePayload) as excinfo:
        encode_form({"when": Secretive()})
    assert "payload['when']" in str(excinfo.value)
    assert SECRET_VALUE not in str(excinfo.value)


def test_a_body_at_the_size_limit_is_allowed_and_one_byte_more_is_not() -> None:
    codecs = Codecs()
    body = codecs.encode(PAYLOAD, "application/json")
    assert codecs.encode(PAYLOAD, "application/json", max_size=len(body)) == body
    with pytest.raises(PayloadTooLarge) as excinfo:
        codecs.encode(PAYLOAD, "application/json", max_size=len(body) - 1)
    message = str(excinfo.value)
    assert str(len(body)) in message
    assert str(len(body) - 1) in message
    assert "THORN_PAYLOAD_MAX_SIZE" in message
    assert "article.changed" not in message


def test_an_override_by_callable_replaces_and_adds_codecs() -> None:
    def upper_json(data: Any) -> str:
        return json.dumps(data).upper()

    codecs = Codecs({"application/json": upper_json, "Text/Plain": str})
    assert codecs.encode({"a": "b"}, "application/json") == b'{"A": "B"}'
    assert codecs.encode("héllo", "text/plain; charset=utf-8") == "héllo".encode()
    assert "application/x-www-form-urlencoded" in codecs


@pytest.mark.parametrize("path", ["base64:b64encode", "base64.b64encode"])
def test_an_override_by_import_path_is_resolved_once(path: str) -> None:
    codecs = Codecs({"application/octet-stream": path})
    assert codecs["application/octet-stream"] is base64.b64encode
    assert codecs.encode(b"\x00\x01", "application/octet-stream") == b"AAE="


def test_an_import_path_may_name_an_attribute_of_an_attribute() -> None:
    codecs = Codecs({"application/json": "json:JSONDecoder.decode"})
    assert codecs["application/json"].__qualname__ == "JSONDecoder.decode"


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("no_such_module_here:encode", "cannot import"),
        ("json:no_such_function", "cannot import"),
        ("json:__name__", "not callable"),
        ("justaname", "not an import path"),
        ("json:", "not an import path"),
    ],
)
def test_a_bad_import_path_is_improperly_configured_naming_the_setting_and_key(
    path: str, hint: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        Codecs({"application/xml": path})
    message = str(excinfo.value)
    assert "THORN_CODECS" in message
    assert "application/xml" in message
    assert hint in message


def test_a_key_that_is_not_a_content_type_is_improperly_configured() -> None:
    with pytest.raises(ImproperlyConfigured, match="not a content type"):
        Codecs({"json": encode_json})


def test_a_value_that_is_neither_callable_nor_a_path_is_improperly_configured() -> None:
    with pytest.raises(ImproperlyConfigured, match="function or an import path"):
        Codecs({"application/json": 42})  # type: ignore[dict-item]


def test_none_removes_a_built_in_codec() -> None:
    codecs = Codecs({"application/x-www-form-urlencoded": None})
    assert "application/x-www-form-urlencoded" not in codecs
    with pytest.raises(UnencodablePayload, match="application/json"):
        codecs.encode(PAYLOAD, "application/x-www-form-urlencoded")


def test_a_codec_failing_with_a_type_error_becomes_an_unencodable_payload() -> None:
    def broken(data: Any) -> bytes:
        raise ValueError(f"cannot handle {SECRET_VALUE}")

    with pytest.raises(UnencodablePayload) as excinfo:
        Codecs({"text/csv": broken}).encode(PAYLOAD, "text/csv")
    assert "text/csv" in str(excinfo.value)
    assert SECRET_VALUE not in str(excinfo.value)


def test_a_codec_must_return_bytes_or_str() -> None:
    def counting(data: Any) -> Any:
        return len(data)

    with pytest.raises(UnencodablePayload, match="must return bytes or str"):
        Codecs({"text/csv": counting}).encode(PAYLOAD, "text/csv")


def test_encode_cached_encodes_once_per_content_type() -> None:
    calls: list[Any] = []

    def counting(data: Any) -> bytes:
        calls.append(data)
        return encode_json(data)

    codecs = Codecs({"application/json": counting})
    cache: dict[str, Any] = {}
    bodies = {
        codecs.encode_cached(PAYLOAD, "application/json", cache) for _ in range(100)
    }
    codecs.encode_cached(PAYLOAD, "APPLICATION/JSON; charset=utf-8", cache)
    form = codecs.encode_cached(PAYLOAD, "application/x-www-form-urlencoded", cache)
    assert len(calls) == 1
    assert bodies == {encode_json(PAYLOAD)}
    assert form == encode_form(PAYLOAD)


def test_encode_cached_remembers_failures_too() -> None:
    calls: list[Any] = []

    def refusing(data: Any) -> bytes:
        calls.append(data)
        raise UnencodablePayload("refused")

    codecs = Codecs({"text/csv": refusing})
    cache: dict[str, Any] = {}
    for _ in range(3):
        with pytest.raises(UnencodablePayload, match="refused"):
            codecs.encode_cached(PAYLOAD, "text/csv", cache)
    assert len(calls) == 1


def test_encode_cached_checks_the_size_limit_on_every_call() -> None:
    codecs = Codecs()
    cache: dict[str, Any] = {}
    body = codecs.encode_cached(PAYLOAD, "application/json", cache)
    with pytest.raises(PayloadTooLarge):
        codecs.encode_cached(PAYLOAD, "application/json", cache, max_size=5)
    assert codecs.encode_cached(PAYLOAD, "application/json", cache) == body


def test_codecs_have_a_readable_repr() -> None:
    assert "application/json" in repr(Codecs())
