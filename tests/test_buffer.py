"""Buffering: events collected in a block and dispatched together."""

from __future__ import annotations

import time
from typing import Any

import pytest

from thorn import BufferNotEmpty, Event, buffer_events


def test_events_are_sent_when_the_block_exits(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()])
    with buffer_events():
        event.send({"n": 1})
        event.send({"n": 2})
        assert receiver.hooks == []
    assert [h.json()["n"] for h in receiver.wait_for(2)] == [1, 2]


def test_nested_contexts_flush_with_the_outermost(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()])
    with buffer_events():
        event.send({"n": "A"})
        with buffer_events():
            event.send({"n": "B"})
        assert receiver.hooks == []
        event.send({"n": "C"})
    assert [h.json()["n"] for h in receiver.wait_for(3)] == ["A", "B", "C"]


def test_explicit_flush_sends_events_of_all_contexts(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()])
    with buffer_events():
        event.send({"n": 1})
        with buffer_events() as inner:
            event.send({"n": 2})
            inner.flush()
            assert len(receiver.wait_for(2)) == 2
        event.send({"n": 3})
    assert len(receiver.wait_for(3)) == 3


def test_maybe_flush_every_n_calls(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()])
    with buffer_events(flush_freq=3) as buffer:
        for i in range(7):
            event.send({"n": i})
            buffer.maybe_flush()
        assert receiver.listener.count == 6
    assert receiver.listener.count == 7


def test_maybe_flush_after_a_timeout(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()])
    with buffer_events(flush_timeout=0.05) as buffer:
        event.send({})
        assert not buffer.maybe_flush()
        time.sleep(0.06)
        assert buffer.maybe_flush()
        assert receiver.listener.count == 1


def test_disabling_a_buffer_with_events_raises(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()])
    app.enable_buffer()
    event.send({})
    with pytest.raises(BufferNotEmpty):
        app.disable_buffer()
    app.flush_buffer()
    app.disable_buffer()
    assert receiver.listener.count == 1


def test_buffered_requests_to_one_url_keep_their_order(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url("/a"), receiver.url("/b")])
    with buffer_events():
        for i in range(20):
            event.send({"n": i})
    hooks = receiver.wait_for(40)
    for path in ("/a", "/b"):
        assert [h.json()["n"] for h in hooks if h.path == path] == list(range(20))


def test_buffer_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        buffer_events(flush_freq=0)
    with pytest.raises(ValueError):
        buffer_events(flush_timeout=0)
