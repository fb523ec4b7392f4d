"""ProcessStore: an engine whose store works in a process of its own."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from process_stores import TrickyStore, broken_store
from test_engine import NOW, SECRET, run, task
from thorn.engine.core import DeliveryEngine
from thorn.engine.process import ProcessStore, StoreProcessError
from thorn.listener import ListenerThread
from thorn.receiver import verify_request
from thorn.validators import ensure_protocol


@pytest.fixture
def store() -> Iterator[ProcessStore]:
    store = ProcessStore(TrickyStore, "first")
    try:
        yield store
    finally:
        store.close()


def test_an_engine_delivers_through_a_store_in_another_process(
    store: ProcessStore,
) -> None:
    with ListenerThread(secret=SECRET) as receiver:
        tasks = [task(receiver.url(f"/p/{i}")) for i in range(30)]
        for t in tasks:
            store.add(t, next_attempt_at=NOW)
        engine = DeliveryEngine(
            store, validators=[ensure_protocol("http")], clock=lambda: NOW
        )

        async def main() -> tuple[int, Any]:
            tried = await engine.run_once(NOW)
            child = store.process
            states = {t.id: store.state(t.id) for t in tasks}
            attempts = {t.id: store.attempts_of(t.id) for t in tasks}
            assert store.child_pid() == store.pid != os.getpid()
            assert store.backlog(now=NOW) == 0
            # The engine closes its store when it is done: the child ends.
            await engine.aclose()
            return tried, (child, states, attempts)

        tried, (child, states, attempts) = run(main())
        hooks = receiver.hooks
    assert tried == 30
    assert {h.header("hook-delivery") for h in hooks} == {t.id for t in tasks}
    assert all(verify_request(h.body, h.headers, SECRET) for h in hooks)
    assert set(states.values()) == {"succeeded"}
    for t in tasks:
        (attempt,) = attempts[t.id]
        assert attempt.status_code == 200
        assert attempt.response_excerpt == b"ok"
    assert child is not None
    assert not child.is_alive()
    assert store.process is None


def test_a_claim_comes_back_as_the_same_tasks(store: ProcessStore) -> None:
    made = [task("http://127.0.0.1:9/x", extra_secrets=("old",), headers=(("A", "b"),))]
    store.add(made[0], next_attempt_at=NOW)
    (claimed,) = store.claim(owner="me", limit=10, lease=60, now=NOW)
    assert claimed == made[0]
    assert store.leased_by(made[0].id) == "me"
    store.release([claimed.id], owner="me")
    assert store.leased_by(made[0].id) is None


def test_the_store_errors_come_back_as_they_were(store: ProcessStore) -> None:
    with pytest.raises(ValueError, match="refused: no such delivery"):
        store.refuse()
    # The child lives on: the same store answers.
    pid = store.child_pid()
    with pytest.raises(StoreProcessError, match="Unpicklable: exploded with a lock"):
        store.explode()
    assert store.child_pid() == pid
    with pytest.raises(AttributeError):
        store.no_such_method()


def test_a_child_that_dies_is_started_again_at_the_next_call(
    store: ProcessStore,
) -> None:
    first = store.child_pid()
    with pytest.raises(StoreProcessError, match=r"died during die\(\) \(exit code 3\)"):
        store.die()
    assert store.describe() == "first"  # made again from the same factory
    second = store.child_pid()
    assert second != first
    os.kill(second, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while store.process is not None and store.process.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(StoreProcessError, match=r"died during child_pid\(\)"):
        store.child_pid()
    assert store.child_pid() not in (first, second)


def test_a_factory_that_fails_says_why() -> None:
    store = ProcessStore(broken_store)
    with pytest.raises(
        StoreProcessError,
        match="could not make its store: RuntimeError: the database is not configured",
    ):
        store.backlog(now=NOW)
    assert store.process is None
    store.close()  # nothing to close: no error


def test_close_twice_and_calls_after_close(store: ProcessStore) -> None:
    store.child_pid()
    store.close()
    store.close()
    assert store.process is None
    assert store.describe() == "first"  # a call after close starts a child


def test_a_factory_that_cannot_pickle_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match=r"must pickle \(use a module-level function"):
        ProcessStore(lambda: TrickyStore())


def test_start_starts_the_child_once(store: ProcessStore) -> None:
    assert store.pid is None  # nothing runs before the first call
    store.start()
    first = store.pid
    assert first is not None
    store.start()  # already running: the same child
    assert store.pid == first == store.child_pid()


def test_start_says_why_a_factory_failed() -> None:
    store = ProcessStore(broken_store)
    with pytest.raises(StoreProcessError, match="the database is not configured"):
        store.start()


def test_the_child_outlives_signals_meant_for_the_group(store: ProcessStore) -> None:
    """Ctrl-C or a SIGTERM to the process group: the engine drains, and its
    store must still be there to record; it ends when the engine closes it."""
    pid = store.child_pid()
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.2)
    assert store.child_pid() == pid
    child = store.process
    store.close()
    assert child is not None
    assert not child.is_alive()
