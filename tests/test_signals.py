"""Blinker signals around deliveries; a receiver that raises breaks nothing."""

from __future__ import annotations

import logging
from typing import Any

from thorn import Event, signals
from thorn.listener import Reply


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
