"""The Django environment: detection, settings, the model, delivery to rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import setting_changed
from django.db import connection
from django.test.utils import override_settings
from django.urls import reverse

import thorn
from thorn import Thorn
from thorn.django.managers import SubscriberManager
from thorn.django.models import Subscriber
from thorn.environment.django import DjangoEnv
from thorn.exceptions import ImproperlyConfigured
from thorn.listener import ListenerThread
from thorn.receiver import verify_request

TESTS = Path(__file__).parents[1]


def _autodetect_in_subprocess(environ: dict[str, str]) -> str:
    code = (
        "from thorn.environment.django import DjangoEnv;print(DjangoEnv.autodetect())"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(environ)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_django_is_detected_when_a_settings_module_is_named() -> None:
    assert _autodetect_in_subprocess({"DJANGO_SETTINGS_MODULE": "x.y"}) == "True"
    assert _autodetect_in_subprocess({}) == "False"


def test_django_is_detected_through_another_variable_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THORN_TEST_SETTINGS", "testproject.settings")
    assert DjangoEnv.autodetect(env="THORN_TEST_SETTINGS") is True


def test_an_app_under_django_uses_the_django_environment(thorn_app: Thorn) -> None:
    assert isinstance(thorn_app.env, DjangoEnv)
    assert thorn_app.env.config is settings
    assert thorn_app.settings.THORN_RETRY is False  # from testproject.settings
    assert thorn_app.Subscriber is Subscriber
    assert thorn_app.Subscribers is Subscriber.objects
    assert thorn_app.reverse is reverse


def test_the_environment_names_the_manual_attributes() -> None:
    env = DjangoEnv()
    assert env.settings_cls == "django.conf:settings"
    assert env.reverse_cls == "django.urls:reverse"
    assert env.signals_cls == "thorn.django.signals"
    assert env.subscriber_cls == "thorn.django.models:Subscriber"
    assert isinstance(env.Subscribers, SubscriberManager)


def test_signals_are_imported_only_when_asked_for() -> None:
    env = DjangoEnv()
    env.signals_cls = "thorn.django.utils"
    assert env.signals.__name__ == "thorn.django.utils"


@pytest.mark.parametrize(
    "spec",
    [
        None,
        "thorn.Subscriber",
        "thorn.django.models:Subscriber",
        "thorn.django.models.Subscriber",
    ],
)
def test_the_subscriber_model_setting_takes_label_or_import_path(spec: Any) -> None:
    with override_settings(THORN_SUBSCRIBER_MODEL=spec):
        assert DjangoEnv().Subscriber is Subscriber


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("thorn.Nothing", "names no installed model"),
        ("nothing", "app_label.ModelName"),
        ("thorn.django.models:Nothing", "cannot import"),
    ],
)
def test_a_wrong_subscriber_model_setting_says_what_to_write(
    spec: str, message: str
) -> None:
    with (
        override_settings(THORN_SUBSCRIBER_MODEL=spec),
        pytest.raises(ImproperlyConfigured, match="THORN_SUBSCRIBER_MODEL") as info,
    ):
        DjangoEnv().Subscriber  # noqa: B018
    assert message in str(info.value)


def test_the_subscriber_model_is_resolved_again_when_the_setting_changes() -> None:
    env = DjangoEnv()
    try:
        assert env.Subscriber is Subscriber
        with (
            override_settings(THORN_SUBSCRIBER_MODEL="thorn.Nothing"),
            pytest.raises(ImproperlyConfigured, match="names no installed model"),
        ):
            env.Subscriber  # noqa: B018
        assert env.Subscriber is Subscriber
    finally:
        env.close()


# -- settings follow override_settings ----------------------------------------------


def test_override_settings_resets_cached_thorn_settings(thorn_app: Thorn) -> None:
    assert thorn_app.settings.THORN_EVENT_TIMEOUT == 3.0
    with override_settings(THORN_EVENT_TIMEOUT=7.5):
        assert thorn_app.settings.THORN_EVENT_TIMEOUT == 7.5
    assert thorn_app.settings.THORN_EVENT_TIMEOUT == 3.0


def test_override_settings_replaces_the_dispatcher(thorn_app: Thorn) -> None:
    first = thorn_app.dispatcher
    with override_settings(THORN_DISPATCHER="disabled"):
        assert type(thorn_app.dispatcher).__module__ == "thorn.dispatch.disabled"
    assert thorn_app.dispatcher is not first
    assert type(thorn_app.dispatcher).__module__ == "thorn.dispatch.default"


def test_the_setting_changed_receiver_lives_until_closed() -> None:
    seen: list[str] = []
    env = DjangoEnv()
    env.setting_changed(seen.append)  # a bound method nobody else keeps
    before = len(setting_changed.receivers)
    with override_settings(THORN_RETRY_MAX=1):
        pass
    assert seen == ["THORN_RETRY_MAX", "THORN_RETRY_MAX"]
    env.close()
    assert len(setting_changed.receivers) == before - 1
    with override_settings(THORN_RETRY_MAX=2):
        pass
    assert len(seen) == 2


# -- stored subscribers ---------------------------------------------------------------


@pytest.mark.django_db
def test_subscribers_for_returns_the_matching_rows() -> None:
    wanted = Subscriber.objects.create(event="user.*", url="http://127.0.0.1/a")
    Subscriber.objects.create(event="article.*", url="http://127.0.0.1/b")
    assert list(DjangoEnv().subscribers_for("user.created")) == [wanted]


@pytest.mark.django_db
def test_subscribers_for_is_empty_until_the_table_is_migrated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Subscriber.objects.create(event="user.*", url="http://127.0.0.1/a")
    env = DjangoEnv()
    caplog.set_level("DEBUG", logger="thorn.environment.django")
    # Inside the test's transaction, rolled back afterwards (SQLite and
    # PostgreSQL both undo DDL).
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE thorn_subscriber RENAME TO thorn_subscriber_x")
    assert list(env.subscribers_for("user.created")) == []
    assert "migrate" in caplog.text
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE thorn_subscriber_x RENAME TO thorn_subscriber")
    assert len(list(env.subscribers_for("user.created"))) == 1


def test_subscribers_for_is_empty_while_apps_are_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(apps, "ready", False)
    assert list(DjangoEnv().subscribers_for("user.created")) == []


@pytest.mark.django_db
def test_on_commit_runs_the_function_with_its_arguments_after_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    calls: list[tuple[Any, ...]] = []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        DjangoEnv().on_commit(lambda *a, **kw: calls.append((a, kw)), 1, b=2)
        assert calls == []
    assert len(callbacks) == 1
    assert calls == [((1,), {"b": 2})]


# -- delivery to stored subscribers ---------------------------------------------------


@pytest.mark.django_db
def test_an_event_is_delivered_to_a_stored_subscriber_and_signed_with_its_secret(
    receiver: ListenerThread,
) -> None:
    sub = Subscriber.objects.create(
        event="x.*", url=receiver.url("/hook"), hmac_digest="sha512"
    )
    Subscriber.objects.create(event="x.*", url=receiver.url("/off"), active=False)
    Subscriber.objects.create(event="other.y", url=receiver.url("/other"))

    thorn.Event("x.y").send({"answer": 42})

    (hook,) = receiver.wait_for(1)
    assert hook.path == "/hook"
    assert hook.json() == {"answer": 42}
    schemes = verify_request(
        hook.body, hook.headers, sub.hmac_secret, digest=sub.hmac_digest
    )
    assert "Hook-HMAC" in schemes
    assert hook.header("Hook-Subscription") == str(sub.uuid)


@pytest.mark.django_db
def test_a_subscriber_with_a_user_gets_only_that_users_events(
    receiver: ListenerThread,
) -> None:
    ada = get_user_model().objects.create_user("ada", password="x")
    Subscriber.objects.create(event="x.y", url=receiver.url("/ada"), user=ada)
    Subscriber.objects.create(event="x.y", url=receiver.url("/all"))

    thorn.Event("x.y").send({"n": 1})
    assert [h.path for h in receiver.wait_for(1)] == ["/all"]
    receiver.clear()

    thorn.Event("x.y").send({"n": 2}, sender=ada)
    assert sorted(h.path for h in receiver.wait_for(2)) == ["/ada", "/all"]


@pytest.mark.django_db
def test_sending_leaves_out_the_fields_it_never_reads() -> None:
    wanted = Subscriber.objects.create(event="user.created", url="http://a.example")
    (found,) = DjangoEnv().subscribers_for("user.created")
    assert found.get_deferred_fields() == set(DjangoEnv.UNUSED_WHEN_SENDING)
    # What sending reads is there; the rest is read on access, as ever.
    assert (found.pk, found.url, found.hmac_secret) == (
        wanted.pk,
        wanted.url,
        wanted.hmac_secret,
    )
    assert found.created_at == wanted.created_at
