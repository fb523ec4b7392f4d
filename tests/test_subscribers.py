"""Event patterns, candidate lists, and subscriber specs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thorn.exceptions import ImproperlyConfigured
from thorn.subscribers import (
    Subscriber,
    iter_subscribers,
    matches_pattern,
    pattern_candidates,
    static_subscribers,
    validate_pattern,
)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("user.created", "user.created", True),
        ("user.created", "user.changed", False),
        ("user.*", "user.created", True),
        ("user.*", "user.profile.changed", True),
        ("user.*", "user", False),
        ("*.created", "article.created", True),
        ("*.created", "blog.article.created", False),
        ("*", "anything", True),
        ("*", "any.thing.at.all", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.d", False),
        ("a.*.*", "a.b.c.d", True),
        ("article.*", "articles.created", False),
    ],
)
def test_patterns_match_whole_words(pattern: str, name: str, expected: bool) -> None:
    assert matches_pattern(pattern, name) is expected


def test_candidates_of_a_three_word_name() -> None:
    cands = pattern_candidates("a.b.c")
    assert cands[0] == "a.b.c"
    assert len(cands) == len(set(cands)) == 11
    assert {"*", "a.*", "*.b.*", "*.*.*", "a.b.*", "*.b.c"} <= set(cands)


words = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4)


@given(words, st.lists(st.sampled_from(["a", "b", "c", "*"]), min_size=1, max_size=4))
def test_a_pattern_matches_exactly_when_it_is_a_candidate(
    name_words: list[str], pattern_words: list[str]
) -> None:
    name = ".".join(name_words)
    pattern = ".".join(pattern_words)
    assert matches_pattern(pattern, name) == (pattern in pattern_candidates(name))


@pytest.mark.parametrize("bad", ["", "a..b", "a.b*", "us*er.created", " a"])
def test_malformed_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_pattern(bad)


def test_setting_values_may_be_urls_lists_dicts_and_callables() -> None:
    def more(event: str, sender: Any = None, **kwargs: Any) -> Any:
        yield "https://more.example.com/a"
        yield {"url": "https://more.example.com/b"}

    setting = {
        "user.on_create": "https://example.com/e/on_user_created",
        "address.on_change": {
            "url": "https://foo.example.com/e/address_change",
            "content_type": "application/x-www-form-urlencoded",
        },
        "balance.negative": [
            "http://accounts.example.com/e/on_negative_balance",
            "http://metrics.example.com/e/on_negative_balance",
        ],
        "address.*": [more],
    }
    assert [s.url for s in static_subscribers(setting, "user.on_create")] == [
        "https://example.com/e/on_user_created"
    ]
    subs = list(static_subscribers(setting, "address.on_change"))
    assert [s.url for s in subs] == [
        "https://foo.example.com/e/address_change",
        "https://more.example.com/a",
        "https://more.example.com/b",
    ]
    assert subs[0].content_type == "application/x-www-form-urlencoded"
    assert len(list(static_subscribers(setting, "balance.negative"))) == 2


def test_static_subscribers_have_stable_uuids() -> None:
    a = Subscriber(url="https://example.com/", event="a.*")
    b = Subscriber(url="https://example.com/", event="a.*")
    c = Subscriber(url="https://example.com/", event="b.*")
    assert a.uuid == b.uuid != c.uuid


def test_subscriber_dict_round_trip_and_unknown_keys() -> None:
    sub = Subscriber.from_dict(
        url="https://example.com/", event="x.*", hmac_secret="s", hmac_digest="sha512"
    )
    assert Subscriber.from_dict(sub.as_dict()) == sub
    with pytest.raises(ImproperlyConfigured, match="unknown subscriber keys"):
        Subscriber.from_dict(url="https://example.com/", secret="typo")
    with pytest.raises(ImproperlyConfigured, match="needs a 'url'"):
        Subscriber.from_dict(event="x")


def test_subscriber_repr_hides_credentials() -> None:
    sub = Subscriber(url="https://u:hunter2@example.com/", hmac_secret="topsecret")
    assert "hunter2" not in repr(sub)
    assert "topsecret" not in repr(sub)


def test_an_unusable_subscriber_spec_says_what_to_give() -> None:
    with pytest.raises(ImproperlyConfigured, match="give a URL"):
        list(iter_subscribers(42, "x.y"))


def test_an_unknown_digest_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ImproperlyConfigured, match="md5"):
        Subscriber(url="https://example.com/", hmac_secret="k", hmac_digest="md5")
    with pytest.raises(ImproperlyConfigured):
        list(
            static_subscribers(
                {"x.y": {"url": "https://e.com/", "hmac_digest": "nope"}}, "x.y"
            )
        )


def test_a_subscriber_of_ones_own_gets_as_dict_and_from_dict() -> None:
    from thorn.generic.models import AbstractSubscriber

    class Endpoint(AbstractSubscriber):
        def __init__(self, url: str, event: str = "a.*", **extra: Any) -> None:
            self._url, self._event = url, event
            for name, value in extra.items():
                setattr(self, name, value)

        @property
        def url(self) -> str:
            return self._url

        @property
        def event(self) -> str:
            return self._event

    user = type("User", (), {"pk": 7})()
    made = Endpoint.from_dict(
        {"url": "https://example.com/in", "event": "a.b"}, hmac_secret="k", user=user
    )
    assert isinstance(made, Endpoint)
    assert made.as_dict() == {
        "event": "a.b",
        "url": "https://example.com/in",
        "content_type": "application/json",
        "hmac_secret": "k",
        "hmac_digest": "sha256",
        "uuid": None,
        "user": 7,
    }
    assert made.sign(b"m") == Subscriber(url="https://x.example", hmac_secret="k").sign(
        b"m"
    )
