"""The Subscriber model, its query set and the model (de)serializers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from thorn import subscribers as core_subscribers
from thorn.django.models import Subscriber, subscriber_event_choices
from thorn.django.utils import deserialize_model, serialize_model
from thorn.matchers import PayloadFilter, Startswith
from thorn.subscribers import AbstractSubscriber
from thorn.utils.hmac import SECRET_CHARS, sign

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:8000/hook"


def make(event: str, **fields: Any) -> Subscriber:
    fields.setdefault("url", URL)
    return Subscriber.objects.create(event=event, **fields)


def matched(event: str, user: Any = None) -> set[str]:
    return {s.event for s in Subscriber.objects.matching(event, user)}


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user("ada", password="x")


@pytest.fixture
def other_user() -> Any:
    return get_user_model().objects.create_user("bob", password="x")


# -- defaults ---------------------------------------------------------------------


def test_new_subscriber_has_a_random_64_character_secret_a_uuid_and_sha256() -> None:
    first, second = make("user.created"), make("user.created")
    assert len(first.hmac_secret) == 64
    assert set(first.hmac_secret) <= set(SECRET_CHARS)
    assert first.hmac_secret != second.hmac_secret
    assert isinstance(first.uuid, uuid.UUID)
    assert first.uuid != second.uuid
    assert first.hmac_digest == "sha256"
    assert first.content_type == "application/json"
    assert first.active is True
    assert first.payload_filters == {}
    assert first.created_at is not None
    assert first.updated_at is not None


def test_the_default_secret_is_drawn_with_the_secrets_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import thorn.utils.hmac

    monkeypatch.setattr(thorn.utils.hmac.secrets, "choice", lambda chars: "k")
    assert make("a.b").hmac_secret == "k" * 64


def test_subscriber_is_an_abstract_subscriber() -> None:
    assert isinstance(make("a.b"), AbstractSubscriber)
    assert issubclass(Subscriber, AbstractSubscriber)


def test_the_table_is_named_thorn_subscriber_and_ordered_newest_first() -> None:
    first, second = make("a.b"), make("a.c")
    assert Subscriber._meta.db_table == "thorn_subscriber"
    assert list(Subscriber.objects.all()) == [second, first]


# -- event choices --------------------------------------------------------------------


def test_event_choices_are_read_from_the_setting_each_time() -> None:
    field = Subscriber._meta.get_field("event")
    assert subscriber_event_choices() == []
    assert not field.choices
    with override_settings(THORN_EVENT_CHOICES=["user.created", ("user.*", "Users")]):
        assert list(field.choices) == [
            ("user.created", "user.created"),
            ("user.*", "Users"),
        ]
        assert field.choices
    assert not field.choices


def test_without_event_choices_any_valid_pattern_is_accepted() -> None:
    Subscriber(event="anything.*", url=URL).full_clean()


def test_with_event_choices_other_events_are_refused() -> None:
    with override_settings(THORN_EVENT_CHOICES=["user.created"]):
        Subscriber(event="user.created", url=URL).full_clean()
        with pytest.raises(ValidationError) as info:
            Subscriber(event="user.deleted", url=URL).full_clean()
    assert "event" in info.value.message_dict


def test_invalid_event_patterns_are_refused() -> None:
    for bad in ("user..created", "user.cre*ted", " "):
        with pytest.raises(ValidationError) as info:
            Subscriber(event=bad, url=URL).full_clean()
        assert "event" in info.value.message_dict


def test_changing_event_choices_needs_no_new_migration() -> None:
    call_command("makemigrations", "thorn", "--check", "--dry-run", verbosity=0)
    with override_settings(THORN_EVENT_CHOICES=["user.created", "user.deleted"]):
        call_command("makemigrations", "thorn", "--check", "--dry-run", verbosity=0)


def test_the_event_form_field_is_free_text_without_choices() -> None:
    from django import forms

    field = Subscriber._meta.get_field("event")
    assert type(field.formfield()) is forms.CharField
    with override_settings(THORN_EVENT_CHOICES=["user.created"]):
        choice_field = field.formfield()
        assert isinstance(choice_field, forms.ChoiceField)
        assert ("user.created", "user.created") in list(choice_field.choices)


# -- matching -----------------------------------------------------------------------


def test_matching_finds_exact_names_and_every_kind_of_pattern() -> None:
    for event in (
        "user.created",
        "user.*",
        "*.created",
        "*",
        "user.deleted",
        "article.created",
        "user.created.twice",
        "*.*",
        "*.*.*",
    ):
        make(event)
    assert matched("user.created") == {
        "user.created",
        "user.*",
        "*.created",
        "*",
        "*.*",
    }
    # A trailing '*' matches one or more words.
    assert matched("user.profile.changed") == {"user.*", "*", "*.*", "*.*.*"}
    assert matched("article.created") == {"article.created", "*.created", "*", "*.*"}
    assert matched("other") == {"*"}


def test_matching_leaves_out_inactive_subscribers() -> None:
    make("user.created")
    make("user.*", active=False)
    assert matched("user.created") == {"user.created"}


def test_subscribers_with_a_user_only_match_that_user_as_instance_or_pk(
    user: Any, other_user: Any
) -> None:
    make("user.created")
    make("user.*", user=user)
    make("*", user=other_user)
    assert matched("user.created") == {"user.created"}
    assert matched("user.created", user) == {"user.created", "user.*"}
    assert matched("user.created", user.pk) == {"user.created", "user.*"}
    assert matched("user.created", str(user.pk)) == {"user.created", "user.*"}
    assert matched("user.created", other_user) == {"user.created", "*"}


def test_a_sender_that_is_no_user_key_matches_only_subscribers_without_user(
    user: Any,
) -> None:
    make("user.created")
    make("user.created", user=user)
    assert matched("user.created", "not-a-number") == {"user.created"}
    assert Subscriber.objects.matching("user.created", "not-a-number").count() == 1


def test_matching_chains_with_other_filters() -> None:
    make("a.b", content_type="application/x-www-form-urlencoded")
    make("a.*")
    found = Subscriber.objects.filter(content_type="application/json").matching("a.b")
    assert [s.event for s in found] == ["a.*"]


def test_names_longer_than_the_candidate_limit_are_matched_in_python() -> None:
    words = [f"w{i}" for i in range(core_subscribers.MAX_CANDIDATE_WORDS + 2)]
    name = ".".join(words)
    starred = ".".join(["*", *words[1:-1], "*"])
    for event in (name, "*", "w0.*", starred, "w1.*", "w0.w1", name + ".more"):
        make(event)
    make("w0.*", active=False)
    with CaptureQueriesContext(connection) as queries:
        found = [s.event for s in Subscriber.objects.matching(name)]
    assert sorted(found) == sorted([name, "*", "w0.*", starred])
    assert len(queries) == 2


# -- the lookup uses the index ------------------------------------------------------


def _plan(sql: str, params: Any) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        # With statistics the planner knows most subscribers have no user.
        # A few rows are cheaper to scan than to look up, so it would scan
        # them; forbidding that shows whether the index serves the query.
        cursor.execute("ANALYZE thorn_subscriber")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_matching_query_searches_the_event_index(user: Any) -> None:
    for i in range(50):
        make(f"thing{i}.created")
    make("thing1.*")
    with CaptureQueriesContext(connection) as queries:
        list(Subscriber.objects.matching("thing1.created", user))
    (query,) = queries.captured_queries
    assert "thorn_subscriber" in query["sql"]
    sql, params = Subscriber.objects.matching(
        "thing1.created", user
    ).query.sql_with_params()
    plan = _plan(sql, params)
    assert "thorn_sub_event_active_idx" in plan, plan
    if connection.vendor == "sqlite":
        assert "SEARCH thorn_subscriber USING INDEX thorn_sub_event_active_idx" in plan
        assert "SCAN thorn_subscriber" not in plan, plan
    else:
        assert "Seq Scan" not in plan, plan


# -- validation ---------------------------------------------------------------------


@override_settings(THORN_RECIPIENT_VALIDATORS=None)
def test_clean_refuses_loopback_urls_under_the_default_validators() -> None:
    with pytest.raises(ValidationError) as info:
        Subscriber(event="a.b", url="http://127.0.0.1/").full_clean()
    (message,) = info.value.message_dict["url"]
    assert "loopback" in message


@override_settings(THORN_RECIPIENT_VALIDATORS=None)
def test_clean_refuses_ports_the_default_validators_do_not_allow() -> None:
    with pytest.raises(ValidationError) as info:
        Subscriber(event="a.b", url="http://93.184.215.14:8080/").full_clean()
    assert "url" in info.value.message_dict


@override_settings(THORN_RECIPIENT_VALIDATORS=None)
def test_clean_accepts_a_public_https_address_under_the_default_validators() -> None:
    Subscriber(event="a.b", url="https://93.184.215.14/hook").full_clean()


def test_clean_refuses_payload_filters_that_do_not_parse() -> None:
    bad_filters: list[Any] = [
        {"data.name": {"match": "nope", "value": "x"}},
        {"data.name": {"match": "like", "value": "("}},
        ["not", "a", "mapping"],
    ]
    for bad in bad_filters:
        with pytest.raises(ValidationError) as info:
            Subscriber(event="a.b", url=URL, payload_filters=bad).full_clean()
        assert list(info.value.message_dict) == ["payload_filters"]


def test_payload_filters_become_a_payload_filter() -> None:
    sub = make(
        "a.b",
        payload_filters={
            "data.state": "PUBLISHED",
            "data.name": Startswith("J").to_dict(),
        },
    )
    sub.full_clean()
    fresh = Subscriber.objects.get(pk=sub.pk)
    assert isinstance(fresh.filters, PayloadFilter)
    assert fresh.filters({"data": {"state": "PUBLISHED", "name": "Jane"}})
    assert not fresh.filters({"data": {"state": "DRAFT", "name": "Jane"}})
    assert make("a.c").filters is None


def test_a_stored_filter_that_does_not_parse_refuses_every_payload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sub = make("a.b", payload_filters={"x": {"match": "nope"}})
    filters = sub.filters
    assert filters is not None
    assert filters({"x": 1}) is False
    assert str(sub.uuid) in caplog.text


# -- plain data, text ---------------------------------------------------------------


def test_as_dict_and_from_dict_round_trip(user: Any) -> None:
    sub = make(
        "user.*",
        user=user,
        hmac_digest="sha512",
        content_type="application/x-www-form-urlencoded",
        payload_filters={"data.state": "PUBLISHED"},
    )
    data = sub.as_dict()
    assert data == {
        "event": "user.*",
        "url": URL,
        "content_type": "application/x-www-form-urlencoded",
        "hmac_secret": sub.hmac_secret,
        "hmac_digest": "sha512",
        "uuid": str(sub.uuid),
        "user": user.pk,
        "active": True,
        "filters": {"data.state": "PUBLISHED"},
    }
    copy = Subscriber.from_dict(data)
    assert copy.pk is None
    assert copy.uuid == sub.uuid
    assert copy.user_id == user.pk
    assert copy.as_dict() == data
    # A worker without the database can rebuild it as an in-memory subscriber.
    plain = core_subscribers.Subscriber.from_dict(data)
    assert plain.url == URL
    assert plain.user_ident() == user.pk


def test_from_dict_builds_an_unsaved_subscriber_and_refuses_unknown_keys() -> None:
    sub = Subscriber.from_dict(event="a.b", url=URL)
    assert sub.pk is None
    assert len(sub.hmac_secret) == 64
    sub.save()
    assert Subscriber.objects.filter(event="a.b").count() == 1
    with pytest.raises(ValueError, match="unknown subscriber keys"):
        Subscriber.from_dict(event="a.b", url=URL, colour="red")


def test_str_and_repr_show_event_and_redacted_url_but_never_the_secret() -> None:
    sub = make("user.*", url="https://ada:pa55word@example.com/hook?x=1")
    for text in (str(sub), repr(sub)):
        assert "user.*" in text
        assert "example.com/hook" in text
        assert sub.hmac_secret not in text
        assert "pa55word" not in text


def test_user_ident_reads_the_key_without_a_query(user: Any) -> None:
    sub = Subscriber.objects.get(pk=make("a.b", user=user).pk)
    with CaptureQueriesContext(connection) as queries:
        assert sub.user_ident() == user.pk
    assert len(queries) == 0
    assert make("a.c").user_ident() is None


def test_sign_uses_the_subscriber_secret_and_digest() -> None:
    sub = make("a.b", hmac_digest="sha512")
    assert sub.sign(b"body") == sign("sha512", sub.hmac_secret, b"body")


def test_get_absolute_url_is_the_api_detail_url() -> None:
    sub = make("a.b")
    assert sub.get_absolute_url() == f"/hooks/{sub.uuid}/"
    assert sub.subscription == sub.get_absolute_url()


def test_disable_enable_and_rotate_secret() -> None:
    sub = make("a.b")
    old = sub.hmac_secret
    sub.disable("410 Gone")
    sub.refresh_from_db()
    assert (sub.active, sub.disabled_reason) == (False, "410 Gone")
    assert sub.disabled_at is not None
    sub.enable()
    sub.refresh_from_db()
    assert (sub.active, sub.disabled_reason, sub.disabled_at) == (True, "", None)
    sub.rotate_secret()
    sub.refresh_from_db()
    assert sub.hmac_secret != old
    assert len(sub.hmac_secret) == 64


# -- thorn.django.utils ---------------------------------------------------------------


def test_models_serialize_to_plain_json_and_back(user: Any) -> None:
    sub = make("a.b", user=user)
    data = serialize_model(sub)
    assert data == {"app_label": "thorn", "model_name": "subscriber", "pk": sub.pk}
    assert deserialize_model(data) == sub
    assert serialize_model(data) is data
    assert deserialize_model(sub) is sub
    assert deserialize_model(serialize_model(user)) == user


def test_deserializing_a_deleted_row_raises_does_not_exist() -> None:
    sub = make("a.b")
    data = serialize_model(sub)
    sub.delete()
    with pytest.raises(Subscriber.DoesNotExist):
        deserialize_model(data)


# -- the benchmark ------------------------------------------------------------------


def test_the_subscriber_benchmark_runs_and_shows_the_index_at_work() -> None:
    command = [
        sys.executable,
        "-m",
        "benchmarks.subscribers",
        "--rows",
        "2000",
        "--events",
        "100",
        "--seconds",
        "0.05",
    ]
    if connection.vendor == "postgresql":
        entry = connection.settings_dict
        command += [
            "--postgresql",
            f"postgresql://{entry['USER']}@{entry['HOST']}:{entry['PORT']}/postgres",
        ]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        command,
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "python scan" in out
    assert "lookups/s" in out
    assert "USING INDEX thorn_sub_event_active_idx" in out  # SQLite's plan
