"""A send's subscriber query, compiled once per event (thorn.django.lookup)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test.utils import override_settings

from thorn.django import lookup
from thorn.django.lookup import LookupCache, compiles
from thorn.django.managers import SubscriberManager
from thorn.django.models import Subscriber
from thorn.environment.django import DjangoEnv

pytestmark = pytest.mark.django_db


def _urls(found: Any) -> list[str]:
    return sorted(s.url for s in found)


@pytest.fixture
def people() -> tuple[Any, Any]:
    users = get_user_model().objects
    ada = users.create_user("ada", password="x")
    bob = users.create_user("bob", password="x")
    for event, url, user, active in [
        ("user.created", "http://127.0.0.1/exact", None, True),
        ("user.*", "http://127.0.0.1/pattern", None, True),
        ("*", "http://127.0.0.1/everything", None, True),
        ("user.created", "http://127.0.0.1/off", None, False),
        ("article.created", "http://127.0.0.1/other", None, True),
        ("user.created", "http://127.0.0.1/ada", ada, True),
        ("user.#", "http://127.0.0.1/bob", bob, True),
    ]:
        Subscriber.objects.create(event=event, url=url, user=user, active=active)
    return ada, bob


def test_the_compiled_query_finds_what_the_orm_finds(people: tuple[Any, Any]) -> None:
    ada, bob = people
    env = DjangoEnv()
    try:
        for sender in (None, ada, bob, ada.pk, str(bob.pk), "nobody", 10**9):
            for _ in range(2):  # compiled, then kept
                found = env.subscribers_for("user.created", sender=sender)
                assert isinstance(found, list)
                wanted = Subscriber.objects.matching("user.created", sender)
                assert _urls(found) == _urls(wanted), sender
        assert _urls(env.subscribers_for("user.created", sender=ada)) == [
            "http://127.0.0.1/ada",
            "http://127.0.0.1/everything",
            "http://127.0.0.1/exact",
            "http://127.0.0.1/pattern",
        ]
        # One query per sender identity (ada and ada.pk are one).
        assert env._lookups.compiled("default") == 6
    finally:
        env.close()


def test_a_kept_query_runs_alone_and_makes_loaded_instances(
    people: tuple[Any, Any], django_assert_num_queries: Any
) -> None:
    env = DjangoEnv()
    try:
        env.subscribers_for("user.created")
        with django_assert_num_queries(1):
            found = env.subscribers_for("user.created")
        exact = next(s for s in found if s.url.endswith("/exact"))
        stored = Subscriber.objects.get(pk=exact.pk)
        assert exact._state.adding is False
        assert exact._state.db == "default"
        assert exact.get_deferred_fields() == set(DjangoEnv.UNUSED_WHEN_SENDING)
        # Converted as the ORM converts them: a UUID, a bool, JSON.
        assert (exact.uuid, exact.active, exact.payload_filters) == (
            stored.uuid,
            True,
            stored.payload_filters,
        )
        assert exact.created_at == stored.created_at  # deferred: read on access
        exact.url = "http://127.0.0.1/saved"
        exact.save()
        assert Subscriber.objects.get(pk=exact.pk).url == "http://127.0.0.1/saved"
    finally:
        env.close()


def test_rows_written_after_the_query_was_kept_are_found(
    people: tuple[Any, Any],
) -> None:
    env = DjangoEnv()
    try:
        before = _urls(env.subscribers_for("user.created"))
        Subscriber.objects.create(event="user.created", url="http://127.0.0.1/new")
        Subscriber.objects.filter(url="http://127.0.0.1/exact").update(active=False)
        after = _urls(env.subscribers_for("user.created"))
        assert after == sorted(
            {*before, "http://127.0.0.1/new"} - {"http://127.0.0.1/exact"}
        )
    finally:
        env.close()


def test_a_setting_change_drops_the_kept_queries(people: tuple[Any, Any]) -> None:
    env = DjangoEnv()
    try:
        env.subscribers_for("user.created")
        assert env._lookups.compiled("default") == 1
        with override_settings(THORN_RETRY_MAX=3):
            assert env._lookups.compiled("default") == 0
            assert len(env.subscribers_for("user.created")) == 3
    finally:
        env.close()


class _PerTenant(SubscriberManager):
    """A manager whose rows depend on the moment: never compiled."""

    tenant = "/exact"

    def get_queryset(self) -> Any:
        return super().get_queryset().filter(url__endswith=self.tenant)


class _OwnMatching(SubscriberManager):
    def matching(self, event: str, user: Any = None) -> Any:
        return super().matching(event, user).filter(url__endswith="/exact")


def test_only_thorns_own_lookup_on_a_short_event_name_is_compiled() -> None:
    assert compiles(Subscriber.objects, "user.created")
    assert compiles(Subscriber.objects, "a.b.c.d")
    # Too long to list its patterns: the ORM reads the database to build it.
    assert not compiles(Subscriber.objects, "a.b.c.d.e.f.g.h.i.j.k.l")
    assert not compiles(_PerTenant(), "user.created")
    assert not compiles(_OwnMatching(), "user.created")


def test_a_manager_of_its_own_is_asked_on_every_send(
    people: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = _PerTenant()
    manager.model = Subscriber
    monkeypatch.setattr(Subscriber._meta, "default_manager", manager, raising=False)
    env = DjangoEnv()
    try:
        assert _urls(env.subscribers_for("user.created")) == ["http://127.0.0.1/exact"]
        monkeypatch.setattr(_PerTenant, "tenant", "/pattern")
        assert _urls(env.subscribers_for("user.created")) == [
            "http://127.0.0.1/pattern"
        ]
    finally:
        env.close()


def test_a_model_with_its_own_loader_gets_the_orms_arguments(
    people: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], int]] = []
    plain = Subscriber.from_db.__func__  # type: ignore[attr-defined]

    def from_db(cls: Any, db: str, names: list[str], values: Any) -> Any:
        seen.append((list(names), len(values)))
        return plain(cls, db, names, values)

    monkeypatch.setattr(Subscriber, "from_db", classmethod(from_db))
    env = DjangoEnv()
    try:
        found = env.subscribers_for("user.created")
        assert len(found) == 3
        names, width = seen[-1]
        # The loaded columns only, as Django's own query set passes them.
        assert width == len(names)
        assert "created_at" not in names
        assert "url" in names
    finally:
        env.close()


def test_the_kept_queries_are_bounded(
    people: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookup, "MAX_LOOKUPS", 4)
    cache = LookupCache()
    model = Subscriber
    for n in range(10):
        event = f"user.e{n}"

        def queryset(event: str = event) -> Any:
            return Subscriber.objects.matching(event)

        found = cache.subscribers(queryset, model, "default", event, None)
        assert _urls(found) == [
            "http://127.0.0.1/everything",
            "http://127.0.0.1/pattern",
        ]
        assert cache.compiled("default") <= 4


def test_an_unhashable_sender_is_looked_up_by_the_orm(people: tuple[Any, Any]) -> None:
    cache = LookupCache()
    found = cache.subscribers(
        lambda: Subscriber.objects.matching("user.created"),
        Subscriber,
        "default",
        "user.created",
        ["not", "hashable"],
    )
    assert len(found) == 3
    assert cache.compiled("default") == 0


def test_each_connection_keeps_its_own(people: tuple[Any, Any]) -> None:
    cache = LookupCache()
    cache.subscribers(
        lambda: Subscriber.objects.matching("user.created"),
        Subscriber,
        "default",
        "user.created",
        None,
    )
    assert cache.compiled("default") == 1
    seen: list[int] = []

    def elsewhere() -> None:
        try:
            seen.append(cache.compiled("default"))  # another connection
        finally:
            connections.close_all()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(30)
    assert seen == [0]
