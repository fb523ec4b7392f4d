"""Blinker signals around deliveries; a receiver that raises breaks nothing."""

from __future__ import annotations

import contextlib
import datetime
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from blinker import NamedSignal

from engine_helpers import run_engine_once
from thorn import Event, signals
from thorn.engine import DeliveryTask, MemoryStore
from thorn.exceptions import BadStatus, DeliveryError
from thorn.listener import Reply
from thorn.request import new_id
from thorn.retry import RetryPolicy
from thorn.signals import SignalingOutboxStore
from thorn.validators import ensure_protocol


def test_delivery_signals_follow_each_attempt(make_app: Any, receiver: Any) -> None:
    app = make_app(THORN_RETRY_DELAY=0.01, THORN_RETRY_MAX=1)
    receiver.route("/down", Reply(status=503))
    seen: list[tuple[str, str, Any]] = []

    def recorder(name: str) -> Any:
        def receive(request: Any, **kwargs: Any) -> None:
            seen.append((name, request.url.target, kwargs))

        return receive

    receivers = {
        name: recorder(name)
        for name in ("attempted", "succeeded", "failed", "exhausted")
    }
    signals.delivery_attempted.connect(receivers["attempted"])
    signals.delivery_succeeded.connect(receivers["succeeded"])
    signals.delivery_failed.connect(receivers["failed"])
    signals.delivery_exhausted.connect(receivers["exhausted"])
    try:
        Event("x.y", subscribers=[receiver.url("/ok"), receiver.url("/down")]).send({})
        assert app.dispatcher.wait_for_retries(10)
    finally:
        signals.delivery_attempted.disconnect(receivers["attempted"])
        signals.delivery_succeeded.disconnect(receivers["succeeded"])
        signals.delivery_failed.disconnect(receivers["failed"])
        signals.delivery_exhausted.disconnect(receivers["exhausted"])
    names = sorted((name, target) for name, target, _ in seen)
    assert names == [
        ("attempted", "/down"),
        ("attempted", "/down"),
        ("attempted", "/ok"),
        ("exhausted", "/down"),
        ("failed", "/down"),
        ("failed", "/down"),
        ("succeeded", "/ok"),
    ]
    ok = next(kw for name, target, kw in seen if name == "succeeded")
    assert ok["response"].status == 200


def test_a_receiver_that_raises_does_not_break_delivery(
    app: Any, receiver: Any, caplog: Any
) -> None:
    def broken(request: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    delivered: list[Any] = []
    signals.delivery_attempted.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="thorn.signals"):
            Event("x.y", subscribers=[receiver.url()]).send(
                {}, on_success=delivered.append
            )
    finally:
        signals.delivery_attempted.disconnect(broken)
    assert len(delivered) == 1
    assert receiver.listener.count == 1
    assert "delivery-attempted" in caplog.text


# -- the delivery engine: SignalingOutboxStore ------------------------------------


NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
ONE_RETRY = RetryPolicy(max_retries=1, delay=10.0, backoff=False, jitter=False)


def engine_task(url: str) -> DeliveryTask:
    return DeliveryTask(
        id=new_id(),
        message_id="m1",
        event="article.created",
        url=url,
        body=b'{"id": 1}',
        content_type="application/json",
        subscription="sub-1",
        hmac_secret="engine-signal-secret",
        hmac_digest="sha256",
        attempts=0,
        policy=ONE_RETRY.to_dict(),
        subscriber_key=url,  # a 410 disables this one only
    )


def run_once(store: Any, now: datetime.datetime) -> int:
    return run_engine_once(store, now=now, validators=[ensure_protocol("http")])


@contextlib.contextmanager
def connected(**receivers: Any) -> Iterator[None]:
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        yield
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)


def test_the_engine_sends_the_delivery_signals_once_each_try_is_recorded(
    receiver: Any,
) -> None:
    receiver.route("/down", Reply(status=503, body=b"busy"))
    receiver.route("/gone", Reply(status=410))
    memory = MemoryStore()
    tasks = {
        name: engine_task(receiver.url(f"/{name}")) for name in ("ok", "down", "gone")
    }
    for task in tasks.values():
        memory.add(task, next_attempt_at=NOW)
    names = {t.id: name for name, t in tasks.items()}
    heard: list[tuple[str, str, Any]] = []

    def recorder(signal: str) -> Any:
        def receive(sender: DeliveryTask, **kwargs: Any) -> None:
            # Sent from the engine's database thread, once recorded.
            assert threading.current_thread().name.startswith("thorn-engine-db")
            assert memory.attempts_of(sender.id)[-1] is kwargs["result"]
            heard.append((signal, names[sender.id], kwargs))

        return receive

    with connected(
        **{
            name: recorder(name)
            for name in (
                "delivery_attempted",
                "delivery_succeeded",
                "delivery_failed",
                "delivery_exhausted",
            )
        }
    ):
        store = SignalingOutboxStore(memory)
        assert run_once(store, NOW) == 3
        assert run_once(store, NOW + datetime.timedelta(seconds=11)) == 1
    said = sorted((signal, name) for signal, name, _ in heard)
    assert said == [
        ("delivery_attempted", "down"),
        ("delivery_attempted", "down"),
        ("delivery_attempted", "gone"),
        ("delivery_attempted", "ok"),
        ("delivery_exhausted", "down"),
        ("delivery_exhausted", "gone"),
        ("delivery_failed", "down"),
        ("delivery_failed", "down"),
        ("delivery_failed", "gone"),
        ("delivery_succeeded", "ok"),
    ]
    by = {(s, n, kw["result"].outcome): kw for s, n, kw in heard}
    ok = by[("delivery_succeeded", "ok", "succeeded")]
    assert ok["response"].status == 200
    assert ok["response"].body == b"ok"
    assert by[("delivery_attempted", "ok", "succeeded")]["error"] is None
    retry = by[("delivery_failed", "down", "retry")]["error"]
    assert isinstance(retry, BadStatus)
    assert retry.response.status == 503
    assert str(retry).startswith("503")
    exhausted = by[("delivery_exhausted", "down", "failed")]["error"]
    assert exhausted.response.status == 503
    assert by[("delivery_exhausted", "gone", "gone")]["error"].response.status == 410
    assert store._tasks == {}  # nothing kept once recorded


def test_an_unreachable_receiver_is_a_delivery_error_without_a_response() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        memory = MemoryStore()
        memory.add(engine_task(f"http://127.0.0.1:{port}/"), next_attempt_at=NOW)
        heard: list[dict[str, Any]] = []

        def on_failed(sender: Any, **kwargs: Any) -> None:
            heard.append(kwargs)

        with connected(delivery_failed=on_failed):
            assert run_once(SignalingOutboxStore(memory), NOW) == 1
    ((kwargs),) = heard
    assert type(kwargs["error"]) is DeliveryError
    assert kwargs["error"].response is None
    assert kwargs["result"].status_code is None
    assert str(kwargs["error"]) == kwargs["result"].error


def test_a_receiver_that_raises_does_not_break_the_engine(
    receiver: Any, caplog: Any
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    memory = MemoryStore()
    tasks = [engine_task(receiver.url(f"/{i}")) for i in range(3)]
    for task in tasks:
        memory.add(task, next_attempt_at=NOW)
    with (
        caplog.at_level(logging.ERROR, logger="thorn.signals"),
        connected(delivery_attempted=broken, delivery_succeeded=broken),
    ):
        assert run_once(SignalingOutboxStore(memory), NOW) == 3
    assert receiver.listener.count == 3
    assert {memory.state(t.id) for t in tasks} == {"succeeded"}
    assert caplog.text.count("delivery-attempted") == 3
    assert caplog.text.count("delivery-succeeded") == 3


def test_the_store_keeps_no_task_when_nobody_listens(receiver: Any) -> None:
    memory = MemoryStore()
    memory.add(engine_task(receiver.url("/")), next_attempt_at=NOW)
    store = SignalingOutboxStore(memory)
    claimed = store.claim(owner="a", limit=10, lease=60, now=NOW)
    assert len(claimed) == 1
    assert store._tasks == {}
    assert store.backlog(now=NOW) == 0
    assert store.states() == memory.states()  # the rest is the wrapped store's


def test_released_tasks_are_forgotten(receiver: Any) -> None:
    memory = MemoryStore()
    memory.add(engine_task(receiver.url("/")), next_attempt_at=NOW)
    store = SignalingOutboxStore(memory)

    def ignore(sender: Any, **kwargs: Any) -> None:
        pass

    with connected(delivery_attempted=ignore):
        (task,) = store.claim(owner="a", limit=10, lease=60, now=NOW)
        assert set(store._tasks) == {task.id}
        store.release([task.id], owner="a")
    assert store._tasks == {}
    assert memory.state(task.id) == "pending"


def test_every_signal_has_an_example_in_the_docs() -> None:
    text = (Path(__file__).parents[1] / "docs" / "signals.md").read_text()
    names = [
        name
        for name in signals.__all__
        if isinstance(getattr(signals, name), NamedSignal)
    ]
    assert len(names) == 13
    for name in names:
        assert f"@signals.{name}.connect" in text, name
