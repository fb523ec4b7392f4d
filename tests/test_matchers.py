"""Tests for thorn.matchers: subscriber-side payload matchers and filters."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from typing import Any as AnyType

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from thorn.matchers import (
    MATCH_TIMEOUT,
    MATCHERS,
    MAX_PATTERN_LENGTH,
    Any,
    Contains,
    Endswith,
    Is,
    Like,
    Matcher,
    PayloadFilter,
    Startswith,
    matcher_from_dict,
)

ALL_MATCHERS: list[Matcher] = [
    Any(),
    Is("PUBLISHED"),
    Is(None),
    Is([1, "a"]),
    Is({"a": 1}),
    Startswith("J"),
    Endswith("son"),
    Contains("ohn"),
    Like(r"^J\w+n$"),
]


# -- Any ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0, "", "x", [1], {"a": 1}, object()])
def test_any_matches_every_value(value: object) -> None:
    assert Any()(value) is True


def test_any_matches_a_field_missing_from_the_payload() -> None:
    assert PayloadFilter({"data.name": Any()})({"data": {}})
    assert PayloadFilter({"data.name": Any()})({})


# -- Is ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        ("Joe", "Joe"),
        (1, 1),
        (1, 1.0),
        (True, True),
        (None, None),
        ([1, "a"], [1, "a"]),
        ([1, 2], (1, 2)),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
    ],
)
def test_is_matches_an_equal_value(pattern: object, value: object) -> None:
    assert Is(pattern)(value) is True


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        (1, True),
        (True, 1),
        (0, False),
        ("1", 1),
        (1, "1"),
        (None, 0),
        (None, ""),
        ("Joe", "joe"),
        ({"a": 1}, {"a": True}),
        ({"a": 1}, {"a": 1, "b": 2}),
        ([1], [True]),
        ([1, 2], [1, 2, 3]),
        (b"x", "x"),
    ],
)
def test_is_is_strict_about_types(pattern: object, value: object) -> None:
    assert Is(pattern)(value) is False


# -- string matchers -------------------------------------------------------------


def test_startswith_matches_a_string_prefix() -> None:
    assert Startswith("J")("Joe")
    assert not Startswith("J")("Bob")
    assert Startswith("")("")


def test_endswith_matches_a_string_suffix() -> None:
    assert Endswith("son")("Jackson")
    assert not Endswith("son")("Jacks")


def test_contains_matches_a_substring() -> None:
    assert Contains("ohn")("Johnny")
    assert not Contains("ohn")("Jack")


def test_contains_matches_an_item_of_a_list() -> None:
    assert Contains("urgent")(["x", "urgent"])
    assert not Contains("urg")(["x", "urgent"])
    assert not Contains("1")([1])


@pytest.mark.parametrize("matcher", [Startswith("1"), Endswith("1"), Contains("1")])
@pytest.mark.parametrize("value", [1, None, b"1", {"1": 1}, 1.0])
def test_string_matchers_do_not_match_other_types(
    matcher: Matcher, value: object
) -> None:
    assert matcher(value) is False


@pytest.mark.parametrize("cls", [Startswith, Endswith, Contains, Like])
@pytest.mark.parametrize("pattern", [1, None, b"J", ["J"]])
def test_string_matchers_need_a_string_pattern(
    cls: type[Matcher], pattern: object
) -> None:
    with pytest.raises(ValueError, match=f"{cls.__name__}.*needs a str"):
        cls(pattern)  # type: ignore[call-arg]


# -- Like --------------------------------------------------------------------------


def test_like_searches_anywhere_in_the_string() -> None:
    assert Like("oh")("Johnny")
    assert Like(r"^J\w+y$")("Johnny")
    assert not Like(r"^oh")("Johnny")


@pytest.mark.parametrize("value", [123, None, ["Johnny"], b"Johnny"])
def test_like_only_applies_to_strings(value: object) -> None:
    assert Like(r".*")(value) is False


def test_like_compiles_the_expression_once() -> None:
    matcher = Like("a+b")
    assert isinstance(matcher.regex, regex.Pattern)
    compiled = matcher.regex
    assert matcher("xaab")
    assert matcher.regex is compiled


def test_like_rejects_an_invalid_expression_with_its_position() -> None:
    with pytest.raises(ValueError, match=r"'ab\(c'.*missing \).*position 4"):
        Like("ab(c")


# Exponential backtracking in the regex module too: (a|a)* tries every way
# of splitting the run of a's before the "!" fails the match.
CATASTROPHIC = r"^(a|a)*$"
LONG_VALUE = "a" * 5000 + "!"


@pytest.fixture
def fresh_timeout_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which patterns have already been logged as too slow."""
    monkeypatch.setattr("thorn.matchers._TIMED_OUT", set())


@pytest.mark.usefixtures("fresh_timeout_log")
def test_like_treats_a_search_that_runs_out_of_time_as_no_match(
    caplog: pytest.LogCaptureFixture,
) -> None:
    matcher = Like(CATASTROPHIC)
    with caplog.at_level(logging.WARNING, logger="thorn.matchers"):
        assert matcher(LONG_VALUE) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert CATASTROPHIC in message
    assert f"{MATCH_TIMEOUT}" in message
    assert "simplify" in message
    assert "aaaa" not in message  # the payload value is never logged


@pytest.mark.usefixtures("fresh_timeout_log")
def test_like_logs_a_slow_pattern_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="thorn.matchers"):
        assert Like(CATASTROPHIC)(LONG_VALUE) is False
        assert Like(CATASTROPHIC)(LONG_VALUE + "b") is False
        assert PayloadFilter({"a": Like(CATASTROPHIC)})({"a": LONG_VALUE}) is False
    assert len(caplog.records) == 1


@pytest.mark.usefixtures("fresh_timeout_log")
def test_like_still_matches_after_a_timeout_on_another_value() -> None:
    matcher = Like(CATASTROPHIC)
    assert matcher(LONG_VALUE) is False
    assert matcher("aaa") is True


def test_the_classic_nested_quantifier_returns_no_match() -> None:
    assert Like(r"(a+)+$")("a" * 5000 + "!") is False


def test_like_rejects_a_pattern_over_the_length_cap() -> None:
    Like("a" * MAX_PATTERN_LENGTH)
    with pytest.raises(ValueError, match=f"at most {MAX_PATTERN_LENGTH}"):
        Like("a" * (MAX_PATTERN_LENGTH + 1))


def test_like_equality_and_hash_use_the_pattern() -> None:
    assert Like("a") == Like("a")
    assert hash(Like("a")) == hash(Like("a"))
    assert Like("a") != Like("b")
    assert "regex" not in repr(Like("a"))


# -- dataclasses and the JSON form -------------------------------------------------


@pytest.mark.parametrize("matcher", ALL_MATCHERS, ids=repr)
def test_matchers_are_frozen(matcher: Matcher) -> None:
    assert dataclasses.is_dataclass(matcher)
    with pytest.raises(dataclasses.FrozenInstanceError):
        matcher.pattern = "x"  # type: ignore[attr-defined]


def test_to_dict_gives_the_json_form() -> None:
    assert Startswith("J").to_dict() == {"match": "startswith", "value": "J"}
    assert Endswith("n").to_dict() == {"match": "endswith", "value": "n"}
    assert Contains("o").to_dict() == {"match": "contains", "value": "o"}
    assert Like("^J").to_dict() == {"match": "like", "value": "^J"}
    assert Is(3).to_dict() == {"match": "is", "value": 3}
    assert Any().to_dict() == {"match": "any"}


@pytest.mark.parametrize("matcher", ALL_MATCHERS, ids=repr)
def test_matcher_from_dict_round_trips_through_json(matcher: Matcher) -> None:
    stored = json.loads(json.dumps(matcher.to_dict()))
    assert matcher_from_dict(stored) == matcher


def test_every_matcher_is_registered_by_name() -> None:
    assert set(MATCHERS) == {"any", "is", "startswith", "endswith", "contains", "like"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"match": "regex", "value": "x"}, "unknown matcher"),
        ({"value": "x"}, "unknown matcher"),
        ({"match": 3, "value": "x"}, "unknown matcher"),
        ({"match": "startswith"}, 'needs a "value"'),
        ({"match": "startswith", "value": "J", "flags": "i"}, "unexpected keys"),
        ({"match": "any", "value": 1}, "unexpected keys"),
        ({"match": "startswith", "value": 1}, "needs a str"),
        ({"match": "like", "value": "("}, "not a valid regular expression"),
        (["match", "is"], "must be an object"),
    ],
)
def test_matcher_from_dict_rejects_bad_input(data: AnyType, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        matcher_from_dict(data)


# -- PayloadFilter ---------------------------------------------------------------

STORED = {
    "data.name": {"match": "startswith", "value": "J"},
    "data.state": "PUBLISHED",
}


def test_payload_filter_from_json_reads_matchers_and_bare_values() -> None:
    payload_filter = PayloadFilter.from_json(STORED)
    assert payload_filter["data.name"] == Startswith("J")
    assert payload_filter["data.state"] == Is("PUBLISHED")
    assert len(payload_filter) == 2
    assert list(payload_filter) == ["data.name", "data.state"]


def test_payload_filter_matches_when_every_field_matches() -> None:
    payload_filter = PayloadFilter.from_json(STORED)
    assert payload_filter({"data": {"name": "Joe", "state": "PUBLISHED"}})
    assert not payload_filter({"data": {"name": "Bob", "state": "PUBLISHED"}})
    assert not payload_filter({"data": {"name": "Joe", "state": "DRAFT"}})


def test_payload_filter_does_not_match_a_missing_field() -> None:
    payload_filter = PayloadFilter.from_json(STORED)
    assert not payload_filter({"data": {"name": "Joe"}})
    assert not payload_filter({"data": None})
    assert not payload_filter({})
    assert not PayloadFilter({"x": Is(None)})({})


def test_payload_filter_on_a_non_mapping_payload_only_matches_any() -> None:
    assert not PayloadFilter({"x": Is(1)})([1])  # type: ignore[arg-type]
    assert PayloadFilter({"x": Any()})(None)  # type: ignore[arg-type]


def test_empty_payload_filter_matches_every_payload() -> None:
    assert PayloadFilter()({})
    assert PayloadFilter.from_json({})({"a": 1})
    assert PayloadFilter.from_json(None)({"a": 1})


def test_payload_filter_indexes_lists_with_numbers() -> None:
    payload_filter = PayloadFilter({"data.tags.1": Is("b")})
    assert payload_filter({"data": {"tags": ["a", "b"]}})
    assert not payload_filter({"data": {"tags": ["a"]}})
    assert not payload_filter({"data": {"tags": "ab"}})


@pytest.mark.parametrize(
    "key",
    [
        "\u00b2",  # SUPERSCRIPT TWO: isdigit(), but int() fails
        "\u2460",  # CIRCLED DIGIT ONE: isdigit(), but int() fails
        "\u0661",  # ARABIC-INDIC DIGIT ONE: int() reads 1
        "\uff11",  # FULLWIDTH DIGIT ONE: int() reads 1
        "-1",
        "1" * 5000,  # more digits than int() accepts by default
    ],
)
def test_only_ascii_digits_index_a_list(key: str) -> None:
    payload = {"data": {"tags": ["a", "b"]}}
    assert PayloadFilter({f"data.tags.{key}": Is("b")})(payload) is False
    assert PayloadFilter({f"data.tags.{key}": Any()})(payload) is True
    # in an object it is an ordinary name
    assert PayloadFilter({f"data.{key}": Is("b")})({"data": {key: "b"}}) is True


def test_an_index_past_any_list_is_missing() -> None:
    payload = {"tags": ["a"]}
    assert PayloadFilter({"tags.00": Is("a")})(payload) is True
    assert PayloadFilter({"tags." + "9" * 40: Is("a")})(payload) is False


def test_payload_filter_to_json_gives_back_the_stored_form() -> None:
    assert PayloadFilter.from_json(STORED).to_json() == STORED


def test_payload_filter_writes_is_of_a_mapping_in_full() -> None:
    payload_filter = PayloadFilter({"data": Is({"match": "x"})})
    stored = payload_filter.to_json()
    assert stored == {"data": {"match": "is", "value": {"match": "x"}}}
    assert PayloadFilter.from_json(stored) == payload_filter


def test_payload_filter_round_trips_every_matcher_through_json() -> None:
    payload_filter = PayloadFilter({f"f{i}": m for i, m in enumerate(ALL_MATCHERS)})
    stored = json.loads(json.dumps(payload_filter.to_json()))
    assert PayloadFilter.from_json(stored) == payload_filter


def test_payload_filter_from_kwargs_uses_double_underscores_as_dots() -> None:
    payload_filter = PayloadFilter.from_kwargs(data__name=Startswith("J"), kind="a")
    assert payload_filter == PayloadFilter(
        {"data.name": Startswith("J"), "kind": Is("a")}
    )
    assert payload_filter({"data": {"name": "Joe"}, "kind": "a"})


def test_payload_filter_from_kwargs_keeps_single_underscores() -> None:
    payload_filter = PayloadFilter.from_kwargs(first_name=Is("Joe"))
    assert list(payload_filter) == ["first_name"]


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"data.name": {"match": "regex", "value": "J"}}, "'data.name'.*unknown"),
        ({"data.name": {"value": "J"}}, "'data.name'.*unknown matcher"),
        ({"data.name": {"match": "startswith", "value": 5}}, "'data.name'.*str"),
        ({"data.name": {"match": "like", "value": "("}}, "'data.name'.*position"),
        ({"": "x"}, "invalid field path ''"),
        ({"data..name": "x"}, "invalid field path 'data..name'"),
        ({3: "x"}, "field path 3 must be a string"),
        (["data.name"], "must be an object"),
        ("data.name", "must be an object"),
    ],
)
def test_payload_filter_from_json_rejects_bad_input(
    stored: AnyType, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PayloadFilter.from_json(stored)


def test_payload_filter_rejects_values_that_are_not_matchers() -> None:
    with pytest.raises(ValueError, match=r"'data\.name': expected a matcher"):
        PayloadFilter({"data.name": "Joe"})  # type: ignore[dict-item]


def test_payload_filter_repr_shows_the_matchers() -> None:
    assert repr(PayloadFilter({"a": Is(1)})) == "PayloadFilter({'a': Is(pattern=1)})"


# -- properties --------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@given(value=json_values)
def test_is_matches_its_own_pattern_after_a_json_round_trip(value: object) -> None:
    assert Is(value)(json.loads(json.dumps(value)))


@given(value=st.text(max_size=10), prefix=st.text(max_size=3))
def test_string_matchers_agree_with_str_methods(value: str, prefix: str) -> None:
    assert Startswith(prefix)(value) == value.startswith(prefix)
    assert Endswith(prefix)(value) == value.endswith(prefix)
    assert Contains(prefix)(value) == (prefix in value)
    assert Like(re.escape(prefix))(value) == (prefix in value)


matchers = st.one_of(
    st.just(Any()),
    st.builds(Is, json_values),
    st.builds(Startswith, st.text(max_size=3)),
    st.builds(Endswith, st.text(max_size=3)),
    st.builds(Contains, st.text(max_size=3)),
    st.builds(Like, st.text("abc.*", max_size=3).map(re.escape)),
)
paths = st.lists(
    st.text("abcxyz_0", min_size=1, max_size=4), min_size=1, max_size=3
).map(".".join)


@given(fields=st.dictionaries(paths, matchers, max_size=4))
def test_payload_filter_survives_a_json_round_trip(
    fields: dict[str, Matcher],
) -> None:
    payload_filter = PayloadFilter(fields)
    stored = json.loads(json.dumps(payload_filter.to_json()))
    assert PayloadFilter.from_json(stored) == payload_filter
