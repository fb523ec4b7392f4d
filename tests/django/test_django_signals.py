"""Every Thorn signal from where Django users cause it: the model, the REST API,
a model event, and the delivery engine on the Django outbox.

The subscription signals of saves and deletes have their own module
(``test_django_subscription_signals.py``); the outbox's own announcements
(``message_queued`` after a commit, ``subscriber_disabled`` for a 410) are
also covered in ``test_django_outbox.py``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from engine_helpers import run_engine_once
from testproject.testapp.models import Article
from thorn import Event, signals
from thorn.django.management.commands.thorn_worker import WorkerOutboxStore
from thorn.django.models import Delivery, Message, Subscriber
from thorn.listener import ListenerThread, Reply
from thorn.signals import SignalingOutboxStore

SIGNALS = [name for name in signals.__all__ if not name[0].isupper()]
SIGNALS.remove("send")
SIGNALS.remove("announce_attempt")


@pytest.fixture
def outbox(settings: Any) -> None:
    settings.THORN_DISPATCHER = "outbox"
    settings.THORN_RETRY = True
    settings.THORN_SIGNAL_HONORS_TRANSACTION = True


@pytest.fixture
def heard() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """What every Thorn signal says, in order: (name, sender, arguments)."""
    seen: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = {}
    for name in SIGNALS:

        def receive(sender: Any, _name: str = name, **kwargs: Any) -> None:
            seen.append((_name, sender, kwargs))

        receivers[name] = receive
        getattr(signals, name).connect(receive)
    yield seen
    for name, receive in receivers.items():
        getattr(signals, name).disconnect(receive)


@contextlib.contextmanager
def raising(*names: str) -> Iterator[None]:
    """Receivers that raise on the signals ``names`` while the block runs."""

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("a receiver with a bug")

    for name in names:
        getattr(signals, name).connect(broken)
    try:
        yield
    finally:
        for name in names:
            getattr(signals, name).disconnect(broken)


def run_signaling_engine_once() -> int:
    """One round of the engine on the Django outbox, announcing its tries."""
    return run_engine_once(SignalingOutboxStore(WorkerOutboxStore()))


def names(heard: list[tuple[str, Any, dict[str, Any]]]) -> list[str]:
    return [name for name, _, _ in heard]


def test_every_signal_is_tested_here() -> None:
    assert sorted(SIGNALS) == sorted(
        [
            "subscription_pre_create",
            "subscription_post_create",
            "subscription_pre_update",
            "subscription_post_update",
            "subscription_pre_delete",
            "subscription_post_delete",
            "message_queued",
            "delivery_attempted",
            "delivery_succeeded",
            "delivery_failed",
            "delivery_exhausted",
            "subscriber_disabled",
            "subscriber_enabled",
        ]
    )


# -- the model ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_model_sends_the_subscription_and_subscriber_signals(
    heard: list[tuple[str, Any, dict[str, Any]]],
) -> None:
    sub = Subscriber.objects.create(event="a.*", url="https://example.com/h")
    sub.disable("maintenance")
    sub.enable()
    sub.delete()
    assert names(heard) == [
        "subscription_pre_create",
        "subscription_post_create",
        "subscription_pre_update",
        "subscription_post_update",
        "subscriber_disabled",
        "subscription_pre_update",
        "subscription_post_update",
        "subscriber_enabled",
        "subscription_pre_delete",
        "subscription_post_delete",
    ]
    assert {sender.pk for _, sender, _ in heard} == {sub.pk}
    (disabled,) = [kw for name, _, kw in heard if name == "subscriber_disabled"]
    assert disabled == {"reason": "maintenance"}


# -- the REST API ----------------------------------------------------------------


@pytest.mark.django_db
def test_the_rest_api_sends_every_subscription_and_subscriber_signal(
    heard: list[tuple[str, Any, dict[str, Any]]], django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user("ann", password="pw")
    api = APIClient()
    api.force_authenticate(user)
    created = api.post(
        "/hooks/", {"event": "a.*", "url": "https://example.com/h"}, format="json"
    )
    assert created.status_code == 201, created.content
    ident = created.json()["id"]
    for active in (False, False, True):  # the second PATCH changes nothing
        answer = api.patch(f"/hooks/{ident}/", {"active": active}, format="json")
        assert answer.status_code == 200, answer.content
    assert api.delete(f"/hooks/{ident}/").status_code == 204
    assert names(heard) == [
        "subscription_pre_create",
        "subscription_post_create",
        "subscription_pre_update",
        "subscription_post_update",
        "subscriber_disabled",
        "subscription_pre_update",
        "subscription_post_update",
        "subscription_pre_update",
        "subscription_post_update",
        "subscriber_enabled",
        "subscription_pre_delete",
        "subscription_post_delete",
    ]
    assert {str(sender.uuid) for _, sender, _ in heard} == {ident}
    (disabled,) = [kw for name, _, kw in heard if name == "subscriber_disabled"]
    assert disabled == {"reason": "turned off by its owner through the API"}


@pytest.mark.django_db
def test_a_raising_receiver_does_not_break_the_rest_api(
    django_user_model: Any, caplog: Any
) -> None:
    user = django_user_model.objects.create_user("bob", password="pw")
    api = APIClient()
    api.force_authenticate(user)
    with raising(*SIGNALS):
        created = api.post(
            "/hooks/", {"event": "a.*", "url": "https://example.com/h"}, format="json"
        )
        assert created.status_code == 201, created.content
        ident = created.json()["id"]
        answer = api.patch(f"/hooks/{ident}/", {"active": False}, format="json")
        assert answer.status_code == 200
    assert Subscriber.objects.get(uuid=ident).active is False
    assert "subscriber-disabled" in caplog.text


# -- a model event and the engine -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_model_event_queues_a_message_and_the_engine_delivers_it(
    outbox: None, receiver: ListenerThread, heard: list[tuple[str, Any, dict[str, Any]]]
) -> None:
    Subscriber.objects.create(event="article.created", url=receiver.url("/a"))
    heard.clear()
    seen_in_db: list[tuple[str, str]] = []

    def look(sender: Any, **kwargs: Any) -> None:
        # The engine's database thread, after the record: the ORM works
        # here and shows the new state.
        seen_in_db.append(
            (threading.current_thread().name, Delivery.objects.get(pk=sender.id).status)
        )

    signals.delivery_succeeded.connect(look)
    try:
        with transaction.atomic():
            Article.objects.create(title="Signals")
            assert heard == []  # message_queued waits for the commit
        assert run_signaling_engine_once() == 1
    finally:
        signals.delivery_succeeded.disconnect(look)
    assert names(heard) == [
        "message_queued",
        "delivery_attempted",
        "delivery_succeeded",
    ]
    message = Message.objects.get()
    delivery = Delivery.objects.get()
    assert heard[0][1] == message.pk
    assert heard[0][2] == {"deliveries": [delivery.pk]}
    _, task, attempted = heard[1]
    assert task.id == delivery.pk
    assert task.event == "article.created"
    assert attempted["error"] is None
    assert attempted["response"].status == 200
    assert attempted["result"].outcome == "succeeded"
    ((thread, status),) = seen_in_db
    assert thread.startswith("thorn-engine-db")
    assert status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_the_engine_signals_failures_exhaustion_and_a_410_disabling(
    outbox: None,
    receiver: ListenerThread,
    heard: list[tuple[str, Any, dict[str, Any]]],
    settings: Any,
) -> None:
    settings.THORN_RETRY_SCHEDULE = (0,)  # one retry, at once
    settings.THORN_RETRY_JITTER = False
    receiver.route("/down", Reply(status=500))
    receiver.route("/gone", Reply(status=410))
    down = Subscriber.objects.create(event="order.paid", url=receiver.url("/down"))
    gone = Subscriber.objects.create(event="order.paid", url=receiver.url("/gone"))
    with transaction.atomic():
        Event("order.paid").send({"id": 1})
    heard.clear()
    assert run_signaling_engine_once() == 2
    assert run_signaling_engine_once() == 1  # the retry of /down
    assert run_signaling_engine_once() == 0
    by_target: dict[str, list[str]] = {"/down": [], "/gone": []}
    for name, sender, _ in heard:
        if name.startswith("delivery_"):
            path = "/" + sender.url.split("/", 3)[-1]
            by_target[path].append(name)
    assert by_target["/down"] == [
        "delivery_attempted",
        "delivery_failed",
        "delivery_attempted",
        "delivery_failed",
        "delivery_exhausted",
    ]
    assert by_target["/gone"] == [
        "delivery_attempted",
        "delivery_failed",
        "delivery_exhausted",
    ]
    (disabled,) = [(s, kw) for name, s, kw in heard if name == "subscriber_disabled"]
    assert disabled[0].pk == gone.pk
    assert disabled[1]["reason"].startswith("410 Gone")
    exhausted = [kw for name, s, kw in heard if name == "delivery_exhausted"]
    assert {kw["result"].outcome for kw in exhausted} == {"failed", "gone"}
    assert {kw["error"].response.status for kw in exhausted} == {500, 410}
    down.refresh_from_db()
    assert down.active


@pytest.mark.django_db(transaction=True)
def test_raising_receivers_do_not_break_the_outbox_or_the_engine(
    outbox: None, receiver: ListenerThread, caplog: Any
) -> None:
    receiver.route("/gone", Reply(status=410))
    Subscriber.objects.create(event="order.paid", url=receiver.url("/ok"))
    Subscriber.objects.create(event="order.paid", url=receiver.url("/gone"))
    with raising(*SIGNALS):
        with transaction.atomic():
            Event("order.paid").send({"id": 1})
        assert run_signaling_engine_once() == 2
    states = dict(Delivery.objects.values_list("url", "status"))
    assert states == {receiver.url("/ok"): "succeeded", receiver.url("/gone"): "failed"}
    assert not Subscriber.objects.get(url=receiver.url("/gone")).active
    for name in (
        "message-queued",
        "delivery-attempted",
        "delivery-succeeded",
        "delivery-failed",
        "delivery-exhausted",
        "subscriber-disabled",
    ):
        assert f"a receiver of the {name!r} signal raised" in caplog.text
