"""Tests for thorn.utils.json: payload encoding with orjson and the stdlib."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from thorn.exceptions import PayloadError, UnencodablePayload
from thorn.utils.json import JsonEncoder, dumps, dumps_bytes

SECRET_VALUE = "s3cr3t-v4lue-never-shown"


class Promise:
    """Stands in for django.utils.functional.Promise."""


Promise.__module__ = "django.utils.functional"


class __proxy__(Promise):
    """A fake lazy string, as ``gettext_lazy()`` returns."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


class Secretive:
    """An unencodable object whose repr would give a secret away."""

    def __repr__(self) -> str:
        return SECRET_VALUE

    __str__ = __repr__


Point = collections.namedtuple("Point", "x y")

UUID_VALUE = UUID("c91fe938-55fb-4190-a5ed-bd92f5ea8339")
INDIA = timezone(timedelta(hours=5, minutes=30))


def stdlib(obj: Any) -> str:
    return json.dumps(obj, cls=JsonEncoder, separators=(",", ":"), ensure_ascii=False)


def message_of(obj: Any) -> str:
    with pytest.raises(UnencodablePayload) as excinfo:
        dumps(obj)
    message = str(excinfo.value)
    assert SECRET_VALUE not in message
    return message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, 6), "2024-01-02T03:04:05.000006"),
        (datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02T03:04:05.123456"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
        (
            datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC),
            "2024-01-02T03:04:05.120000+00:00",
        ),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=INDIA), "2024-01-02T03:04:05+05:30"),
        (date(2024, 2, 29), "2024-02-29"),
        (time(13, 14, 15, 16), "13:14:15.000016"),
        (time(13, 14), "13:14:00"),
        (time(13, 14, tzinfo=UTC), "13:14:00+00:00"),
        (Decimal("1.10"), "1.10"),
        (Decimal("12345678901234567890.123456789"), "12345678901234567890.123456789"),
        (UUID_VALUE, "c91fe938-55fb-4190-a5ed-bd92f5ea8339"),
        (__proxy__("Article changed"), "Article changed"),
        (Colour.RED, "red"),
    ],
)
def test_extra_types_become_the_documented_strings(value: Any, expected: str) -> None:
    assert json.loads(dumps({"v": value})) == {"v": expected}
    assert json.loads(stdlib({"v": value})) == {"v": expected}


def test_a_naive_datetime_stays_naive_and_an_aware_one_keeps_its_offset() -> None:
    naive = datetime(2024, 5, 6, 7, 8, 9, 10)
    aware = naive.replace(tzinfo=INDIA)
    written = json.loads(dumps([naive, aware]))
    assert datetime.fromisoformat(written[0]) == naive
    assert datetime.fromisoformat(written[0]).tzinfo is None
    assert datetime.fromisoformat(written[1]) == aware
    assert datetime.fromisoformat(written[1]).utcoffset() == timedelta(
        hours=5, minutes=30
    )


def test_dumps_and_the_stdlib_encoder_agree_on_every_documented_type() -> None:
    payload = {
        "event": "article.changed",
        "ref": "https://example.com/article/1",
        "sender": None,
        "data": {
            "when": datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "naive": datetime(2024, 1, 2, 3, 4, 5),
            "day": date(2024, 1, 2),
            "at": time(3, 4, 5, 6),
            "aware_at": time(3, 4, 5, tzinfo=INDIA),
            "price": Decimal("9.99"),
            "id": UUID_VALUE,
            "label": __proxy__("lazy"),
            "colour": Colour.BLUE,
            "point": Point(1, 2.5),
            "pair": (1, "two"),
            "flags": [True, False],
            "text": "naïve ☃",
            "big": 2**63,
        },
    }
    assert json.loads(dumps(payload)) == json.loads(stdlib(payload))


def test_output_is_compact_utf8_with_keys_in_the_given_order() -> None:
    data = {"b": 1, "a": ["é", 2.5], "c": {"z": None, "y": True}}
    assert dumps(data) == '{"b":1,"a":["é",2.5],"c":{"z":null,"y":true}}'
    assert dumps_bytes(data) == dumps(data).encode("utf-8")
    assert isinstance(dumps_bytes(data), bytes)


def test_a_lazy_string_is_recognised_by_its_class_not_by_importing_django() -> None:
    class NotLazy:
        """Same class name as Django's Promise, but from another module."""

    NotLazy.__name__ = "Promise"
    assert dumps([__proxy__("x")]) == '["x"]'
    with pytest.raises(UnencodablePayload):
        dumps([NotLazy()])


def test_subclasses_of_float_and_tuple_are_written_like_their_base() -> None:
    class Money(float):
        pass

    assert dumps({"m": Money(2.5), "p": Point(1, 2)}) == '{"m":2.5,"p":[1,2]}'


@pytest.mark.parametrize(
    ("payload", "where", "type_name"),
    [
        ({"data": {"when": Secretive()}}, "payload['data']['when']", "Secretive"),
        ({"tags": {"a", "b"}}, "payload['tags']", "set"),
        ([1, b"raw"], "payload[1]", "bytes"),
        (Secretive(), "payload ", "Secretive"),
        ({"list": [{"deep": [0, Secretive()]}]}, "payload['list'][0]['deep'][1]", ""),
    ],
)
def test_unencodable_values_are_named_by_type_and_place_never_by_value(
    payload: Any, where: str, type_name: str
) -> None:
    message = message_of(payload)
    assert where in message
    assert type_name in message


def test_sets_bytes_and_dataclasses_come_with_advice() -> None:
    @dataclasses.dataclass
    class Row:
        id: int

    assert "convert it to a list" in message_of({"s": {1}})
    assert "base64" in message_of({"b": b"x"})
    assert "dataclasses.asdict()" in message_of({"row": Row(1)})
    assert "THORN_CODECS" in message_of({"o": object()})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused_instead_of_becoming_null(value: float) -> None:
    message = message_of({"stats": {"ratio": value}})
    assert "payload['stats']['ratio']" in message
    assert "NaN or infinite" in message


def test_nan_is_found_even_next_to_real_nulls_and_extra_types() -> None:
    payload = {"a": None, "b": [UUID_VALUE, Point(1.0, float("nan"))]}
    assert "payload['b'][1]" in message_of(payload)


def test_a_payload_with_null_but_no_nan_is_encoded() -> None:
    assert dumps({"a": None, "b": 1.5, "p": Point(None, 2)}) == (
        '{"a":null,"b":1.5,"p":[null,2]}'
    )


def test_keys_must_be_strings() -> None:
    message = message_of({"data": {1: "one"}})
    assert "payload['data']" in message
    assert "keys must be str" in message


def test_integers_beyond_64_bits_are_refused() -> None:
    assert "64-bit" in message_of({"n": 2**64})
    assert dumps({"n": 2**64 - 1, "m": -(2**63)}) == (
        '{"n":18446744073709551615,"m":-9223372036854775808}'
    )


def test_lone_surrogates_are_refused() -> None:
    assert "surrogate" in message_of({"text": "bad \ud800 text"})


def test_a_circular_reference_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert "circular reference" in message_of({"loop": loop})


def test_too_deep_nesting_is_refused() -> None:
    deep: list[Any] = []
    cursor = deep
    for _ in range(300):
        cursor.append([])
        cursor = cursor[0]
    assert "deep" in message_of(deep)


def test_unencodable_payload_is_a_type_error_and_a_payload_error() -> None:
    with pytest.raises(TypeError):
        dumps({1, 2})
    with pytest.raises(PayloadError):
        dumps({1, 2})


def test_a_default_hook_handles_other_types_and_may_override_ours() -> None:
    def default(o: Any) -> Any:
        if isinstance(o, set):
            return sorted(o)
        if isinstance(o, Decimal):
            return float(o)
        raise TypeError

    payload = {"s": {3, 1, 2}, "d": Decimal("1.5"), "u": UUID_VALUE}
    assert json.loads(dumps(payload, default=default)) == {
        "s": [1, 2, 3],
        "d": 1.5,
        "u": str(UUID_VALUE),
    }
    with pytest.raises(UnencodablePayload, match=r"payload\['o'\]"):
        dumps({"o": object()}, default=default)


def test_the_stdlib_encoder_still_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        stdlib({"o": object()})
