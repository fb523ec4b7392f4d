"""The delivery engine on MemoryStore against real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from thorn import Thorn
from thorn.engine.core import DeliveryEngine
from thorn.engine.memory import MemoryStore
from thorn.engine.store import AttemptResult, DeliveryTask
from thorn.listener import ListenerThread, Reply
from thorn.receiver import verify_request
from thorn.request import Request, new_id
from thorn.retry import RetryPolicy
from thorn.subscribers import Subscriber
from thorn.transport.client import AsyncClient, new_event_loop
from thorn.validators import ensure_protocol

T = TypeVar("T")

SECRET = "engine-test-secret"
NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
NO_JITTER = RetryPolicy(max_retries=2, delay=10.0, backoff=False, jitter=False)


def run(coro: Coroutine[Any, Any, T]) -> T:
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def once(engine: DeliveryEngine, now: datetime.datetime | None = None) -> int:
    """One claim-post-record round in a loop of its own, then close."""

    async def main() -> int:
        try:
            return await engine.run_once(now)
        finally:
            await engine.aclose()

    return run(main())


def task(url: str, **options: Any) -> DeliveryTask:
    values: dict[str, Any] = {
        "id": new_id(),
        "message_id": "m1",
        "event": "article.created",
        "url": url,
        "body": b'{"id": 1}',
        "content_type": "application/json",
        "subscription": "sub-1",
        "hmac_secret": SECRET,
        "hmac_digest": "sha256",
        "attempts": 0,
        "policy": NO_JITTER.to_dict(),
        "subscriber_key": "key-1",
    }
    values.update(options)
    return DeliveryTask(**values)


def engine_for(store: MemoryStore, **options: Any) -> DeliveryEngine:
    options.setdefault("validators", [ensure_protocol("http")])
    options.setdefault("clock", lambda: NOW)
    return DeliveryEngine(store, **options)


def add(
    store: MemoryStore, *tasks: DeliveryTask, at: datetime.datetime | None = NOW
) -> list[DeliveryTask]:
    """Put ``tasks`` in ``store``, due at ``at`` (None: the real now)."""
    for t in tasks:
        store.add(t, next_attempt_at=at)
    return list(tasks)


def only(store: MemoryStore, delivery_id: str) -> AttemptResult:
    (attempt,) = store.attempts_of(delivery_id)
    return attempt


def close_to(value: datetime.datetime | None, expected: datetime.datetime) -> bool:
    assert value is not None
    return abs((value - expected).total_seconds()) < 2.0


def dead_port() -> int:
    """A port on 127.0.0.1 that refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- delivering ----------------------------------------------------------------


def test_deliveries_arrive_signed_with_the_delivery_id() -> None:
    with ListenerThread(secret=SECRET) as receiver:
        store = MemoryStore()
        tasks = add(store, *(task(receiver.url(f"/hook/{i}")) for i in range(20)))
        engine = engine_for(store)
        assert once(engine) == 20
        hooks = receiver.hooks
    assert len(hooks) == 20
    assert {h.header("hook-delivery") for h in hooks} == {t.id for t in tasks}
    for hook in hooks:
        assert hook.error is None
        assert hook.verified == "Hook-HMAC, Standard Webhooks"
        assert hook.header("webhook-id") == hook.header("hook-delivery")
        assert hook.header("hook-event") == "article.created"
        assert hook.header("hook-subscription") == "sub-1"
        assert verify_request(hook.body, hook.headers, SECRET)
    for t in tasks:
        assert store.state(t.id) == "succeeded"
        attempt = only(store, t.id)
        assert attempt.status_code == 200
        assert attempt.response_excerpt == b"ok"
        assert attempt.error == ""
        assert attempt.duration > 0
    assert engine.delivered == 20


def test_headers_are_those_a_request_sends() -> None:
    with ListenerThread() as receiver:
        url = receiver.url("/h")
        sub = Subscriber(url=url, hmac_secret=SECRET, uuid="sub-9")
        request = Request(
            "user.created",
            {"a": 1},
            None,
            sub,
            headers={"X-Tenant": "acme"},
            recipient_validators=[],
        )
        body = b'{"a":1}'
        request.body = body
        store = MemoryStore()
        t = add(
            store,
            task(
                url,
                id=request.id,
                event="user.created",
                body=body,
                subscription="sub-9",
                headers=tuple(request.default_headers),
            ),
        )[0]
        once(engine_for(store))
        (hook,) = receiver.hooks
    timestamp = int(hook.header("webhook-timestamp") or 0)
    expected = request.default_headers + request.signature_headers(
        body, timestamp=timestamp
    )
    sent = {k.lower(): v for k, v in expected}
    for name, value in sent.items():
        assert hook.header(name) == value, name
    assert hook.header("hook-delivery") == t.id
    assert hook.header("x-tenant") == "acme"


def test_bad_receivers_do_not_hold_up_the_others() -> None:
    with ListenerThread() as receiver:
        receiver.route("/500", Reply(status=500, body=b"boom"))
        receiver.route("/reset", Reply(action="reset"))
        receiver.route("/hang", Reply(action="hang"))
        receiver.route("/huge", Reply(action="stream"))
        store = MemoryStore()
        good = add(store, *(task(receiver.url(f"/ok/{i}")) for i in range(30)))
        bad = {
            path: add(store, task(receiver.url(path), timeout=0.5))[0]
            for path in ("/500", "/reset", "/hang", "/huge")
        }
        engine = engine_for(store, max_response_size=4096)
        started = time.monotonic()
        assert once(engine) == 34
        assert time.monotonic() - started < 3.0
    for t in good:
        assert store.state(t.id) == "succeeded"
    failed = only(store, bad["/500"].id)
    assert failed.outcome == "retry"
    assert failed.status_code == 500
    assert failed.response_excerpt == b"boom"
    assert failed.error == "500 Internal Server Error"
    assert close_to(failed.next_attempt_at, NOW + datetime.timedelta(seconds=10))
    reset = only(store, bad["/reset"].id)
    assert reset.outcome == "retry"
    assert reset.status_code is None
    assert "connection" in reset.error
    hang = only(store, bad["/hang"].id)
    assert hang.outcome == "retry"
    assert hang.status_code is None
    assert hang.error.startswith("no answer from 127.0.0.1 within 0.5s")
    assert 0.4 < hang.duration < 1.0
    huge = only(store, bad["/huge"].id)
    assert huge.status_code == 200  # an answer; only its first bytes were read
    assert len(huge.response_excerpt) <= 512


def test_retries_follow_the_policy_with_the_same_delivery_id() -> None:
    with ListenerThread() as receiver:
        receiver.route("/down", Reply(status=503))
        store = MemoryStore()
        (t,) = add(store, task(receiver.url("/down")))
        engine = engine_for(store)
        assert once(engine, NOW) == 1
        assert store.state(t.id) == "pending"
        assert close_to(
            store.next_attempt_at(t.id), NOW + datetime.timedelta(seconds=10)
        )
        # Not due yet: nothing is claimed.
        assert once(engine, NOW + datetime.timedelta(seconds=5)) == 0
        later = NOW + datetime.timedelta(seconds=11)
        assert once(engine, later) == 1
        assert once(engine, later + datetime.timedelta(seconds=11)) == 1
        # Three tries: the first and max_retries=2 more; then failed.
        assert store.state(t.id) == "failed"
        assert once(engine, later + datetime.timedelta(days=1)) == 0
        ids = [h.header("hook-delivery") for h in receiver.hooks]
    assert ids == [t.id] * 3
    assert [a.outcome for a in store.attempts_of(t.id)] == ["retry", "retry", "failed"]
    assert engine.retried == 2
    assert engine.failed == 1


def test_retry_after_of_a_429_is_honoured() -> None:
    with ListenerThread() as receiver:
        receiver.route("/slow-down", Reply(status=429, headers={"Retry-After": "120"}))
        store = MemoryStore()
        (t,) = add(store, task(receiver.url("/slow-down")))
        once(engine_for(store), NOW)
    attempt = only(store, t.id)
    assert attempt.outcome == "retry"
    assert attempt.status_code == 429
    assert close_to(attempt.next_attempt_at, NOW + datetime.timedelta(seconds=120))


def test_410_gone_ends_the_delivery_and_disables_the_subscriber() -> None:
    with ListenerThread() as receiver:
        receiver.route("/gone", Reply(status=410))
        store = MemoryStore()
        (t,) = add(store, task(receiver.url("/gone"), subscriber_key=42))
        later = task(receiver.url("/gone"), subscriber_key=42)
        store.add(later, next_attempt_at=NOW + datetime.timedelta(hours=1))
        engine = engine_for(store)
        once(engine, NOW)
        assert once(engine, NOW + datetime.timedelta(hours=2)) == 0
    attempt = only(store, t.id)
    assert attempt.outcome == "gone"
    assert attempt.status_code == 410
    assert attempt.subscriber_key == 42
    assert store.state(t.id) == "gone"
    assert 42 in store.disabled
    assert store.state(later.id) == "pending"


def test_the_default_validators_refuse_internal_addresses() -> None:
    with ListenerThread() as receiver:
        store = MemoryStore()
        (t,) = add(store, task(receiver.url("/internal")))
        app = Thorn(settings={}, set_as_current=False)
        engine = DeliveryEngine(store, app=app, clock=lambda: NOW)
        once(engine)
        assert receiver.hooks == []
    attempt = only(store, t.id)
    assert attempt.outcome == "failed"  # it would be refused again
    assert attempt.status_code is None
    assert attempt.error


class CountingClient(AsyncClient):
    """A real client that counts its address checks."""

    def __init__(self) -> None:
        super().__init__()
        self.checked: list[str] = []

    async def addresses(self, url: Any, validators: Any = ()) -> Any:
        self.checked.append(url.target)
        return await super().addresses(url, validators)


def test_many_urls_of_one_origin_are_checked_once_per_origin() -> None:
    with ListenerThread() as receiver, ListenerThread() as other:
        store = MemoryStore()
        tasks = add(
            store,
            *(task(receiver.url(f"/fan/{i}")) for i in range(40)),
            *(task(other.url(f"/fan/{i}")) for i in range(10)),
        )
        client = CountingClient()
        engine = engine_for(store, client=client)
        assert once(engine) == 50
        assert len(receiver.hooks) == 40
        assert len(other.hooks) == 10
    assert len(client.checked) == 2  # not 50
    assert {store.state(t.id) for t in tasks} == {"succeeded"}


def test_a_refused_origin_fails_every_url_of_it() -> None:
    with ListenerThread() as receiver:
        store = MemoryStore()
        tasks = add(store, *(task(receiver.url(f"/in/{i}")) for i in range(5)))
        app = Thorn(settings={}, set_as_current=False)  # internal: refused
        once(DeliveryEngine(store, app=app, clock=lambda: NOW))
        assert receiver.hooks == []
    errors = {only(store, t.id).error for t in tasks}
    assert len(errors) == 1
    assert {only(store, t.id).outcome for t in tasks} == {"failed"}


def test_an_invalid_url_fails_without_a_request() -> None:
    store = MemoryStore()
    (t,) = add(store, task("ftp://example.com/x"), task("http://exa mple.com/"))[:1]
    once(engine_for(store))
    assert only(store, t.id).outcome == "failed"
    assert "http and https only" in only(store, t.id).error


def test_tls_certificates_are_verified(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with ListenerThread(ssl_context=server_ctx) as tls:
        url = tls.url("/", host="localhost")
        store = MemoryStore()
        (refused,) = add(store, task(url))
        https = [ensure_protocol("https")]
        once(engine_for(store, validators=https))
        assert "not trusted" in only(store, refused.id).error
        trusting = AsyncClient(ca_bundle=str(bundle))
        (trusted,) = add(store, task(url))
        once(engine_for(store, client=trusting, validators=https))
        assert store.state(trusted.id) == "succeeded"
        assert len(tls.hooks) == 1


def test_one_host_gets_no_more_than_its_share_of_connections() -> None:
    with ListenerThread() as receiver:
        receiver.route("/slow", Reply(delay=0.02))
        store = MemoryStore()
        add(store, *(task(receiver.url("/slow")) for _ in range(30)))
        add(store, task(receiver.url("/quick")))
        engine = engine_for(store, per_host=3, concurrency=8)
        assert once(engine) == 31
        assert receiver.connections_made <= 3  # kept alive, never more
    assert store.states() == {"succeeded": 31}


# -- the circuit breaker -----------------------------------------------------------


def test_a_dead_host_opens_its_breaker_and_the_rest_is_rescheduled_unposted() -> None:
    dead = f"http://127.0.0.1:{dead_port()}"
    with ListenerThread() as receiver:
        store = MemoryStore()
        policy = RetryPolicy(max_retries=0, retry=False).to_dict()
        doomed = add(store, *(task(f"{dead}/{i}", policy=policy) for i in range(12)))
        fine = add(store, *(task(receiver.url(f"/fine/{i}")) for i in range(12)))
        engine = engine_for(
            store, per_host=1, breaker_threshold=3, breaker_cooldown=0.3
        )
        assert once(engine, NOW) == 24
        for t in fine:
            assert store.state(t.id) == "succeeded"
        attempts = [only(store, t.id) for t in doomed]
        posted = [a for a in attempts if not a.error.startswith("circuit open")]
        skipped = [a for a in attempts if a.error.startswith("circuit open")]
        assert len(posted) == 3
        assert all(a.outcome == "failed" for a in posted)  # retry=False
        assert len(skipped) == 9
        for a in skipped:
            # Not the receiver's answer, and never the end of a delivery.
            assert a.status_code is None
            assert a.duration == 0.0
            assert a.outcome == "retry"
            assert a.next_attempt_at is not None
            assert a.next_attempt_at > NOW
        assert engine.skipped == 9
        lane = engine.poster.lanes[("http", "127.0.0.1", int(dead.rsplit(":", 1)[1]))]
        assert lane.is_open


def test_after_the_cool_down_one_probe_closes_the_breaker() -> None:
    with ListenerThread() as receiver:
        receiver.route("/flaky", [Reply(action="reset")] * 2 + [Reply()])
        store = MemoryStore()
        first = add(store, *(task(receiver.url("/flaky")) for _ in range(2)))
        engine = engine_for(
            store, per_host=1, breaker_threshold=2, breaker_cooldown=0.2
        )

        async def main() -> None:
            assert await engine.run_once(NOW) == 2
            lane = next(iter(engine.poster.lanes.values()))
            assert lane.is_open
            later = add(store, *(task(receiver.url("/flaky")) for _ in range(3)))
            await engine.run_once(NOW)
            for t in later:
                assert only(store, t.id).error.startswith("circuit open")
            await asyncio.sleep(0.3)
            probe = add(store, task(receiver.url("/flaky")))[0]
            await engine.run_once(NOW)
            assert store.state(probe.id) == "succeeded"
            assert not lane.is_open
            await engine.aclose()

        run(main())
    assert all(store.state(t.id) == "pending" for t in first)


# -- running and stopping --------------------------------------------------------------


def test_run_delivers_everything_until_stopped() -> None:
    with ListenerThread(record=False) as receiver:
        store = MemoryStore()
        tasks = add(
            store, *(task(receiver.url(f"/{i % 7}")) for i in range(600)), at=None
        )
        engine = DeliveryEngine(
            store,
            validators=[ensure_protocol("http")],
            batch=100,
            concurrency=16,
            per_host=8,
            poll_interval=0.05,
        )

        async def main() -> None:
            stop = asyncio.Event()
            runner = asyncio.ensure_future(engine.run(stop))
            deadline = time.monotonic() + 20
            while store.states().get("succeeded", 0) < 600:
                assert time.monotonic() < deadline, store.states()
                await asyncio.sleep(0.02)
            stop.set()
            await asyncio.wait_for(runner, 10)

        run(main())
        assert receiver.listener.count == 600
    assert all(store.state(t.id) == "succeeded" for t in tasks)
    assert engine.delivered == 600
    assert engine.in_flight == 0


def test_stopping_waits_for_requests_in_flight_then_releases_the_rest() -> None:
    with ListenerThread() as receiver:
        receiver.route("/hang", Reply(action="hang"))
        receiver.route("/slow", Reply(delay=0.2))
        store = MemoryStore()
        hanging = [task(receiver.url("/hang"), timeout=30) for _ in range(3)]
        slow = [task(receiver.url("/slow")) for _ in range(3)]
        add(store, *hanging, *slow, at=None)
        engine = DeliveryEngine(
            store,
            validators=[ensure_protocol("http")],
            poll_interval=0.05,
            drain_timeout=0.6,
        )

        async def main() -> None:
            stop = asyncio.Event()
            runner = asyncio.ensure_future(engine.run(stop))
            deadline = time.monotonic() + 5
            while engine.in_flight < 6:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            stop.set()
            started = time.monotonic()
            await asyncio.wait_for(runner, 5)
            assert time.monotonic() - started < 2.0

        run(main())
    for t in slow:  # answered within the drain timeout: recorded
        assert store.state(t.id) == "succeeded"
    for t in hanging:  # not answered: given back untried, not counted
        assert store.state(t.id) == "pending"
        assert store.leased_by(t.id) is None
        assert store.attempts_of(t.id) == []
    now = datetime.datetime.now(datetime.UTC)
    claimed_again = store.claim(owner="other", limit=10, lease=60, now=now)
    assert {t.id for t in claimed_again} == {t.id for t in hanging}


def test_a_store_call_asked_for_is_made_even_if_its_caller_is_cancelled() -> None:
    # drain() cancels the recorder; a record call it had queued behind
    # another store call must run all the same, or tries that were posted
    # stay pending and are posted again.
    store = MemoryStore()
    (one,) = add(store, task("http://127.0.0.1:9/x"), at=None)
    busy = threading.Event()
    go_on = threading.Event()

    def slow_backlog(**kwargs: Any) -> int:
        busy.set()
        go_on.wait(10)
        return 0

    engine = DeliveryEngine(store, validators=[ensure_protocol("http")])
    now = datetime.datetime.now(datetime.UTC)
    (claimed,) = store.claim(owner=engine.owner, limit=1, lease=60, now=now)
    result = AttemptResult(claimed.id, "succeeded", now, 0.01, 200)

    async def main() -> None:
        blocking = asyncio.ensure_future(engine._db(slow_backlog, now=now))
        while not busy.is_set():
            await asyncio.sleep(0.01)
        recording = asyncio.ensure_future(
            engine._db(store.record, [result], owner=engine.owner, now=now)
        )
        await asyncio.sleep(0.05)
        recording.cancel()
        go_on.set()
        await blocking
        await engine.aclose()  # waits for the calls asked for before

    run(main())
    assert store.state(one.id) == "succeeded"


def test_hooks_see_every_try() -> None:
    seen: list[tuple[str, str]] = []

    class Watching(DeliveryEngine):
        def before_attempt(self, task: DeliveryTask) -> None:
            seen.append(("before", task.id))

        def after_attempt(self, task: DeliveryTask, result: AttemptResult) -> None:
            seen.append((result.outcome, task.id))

    with ListenerThread() as receiver:
        store = MemoryStore()
        (t,) = add(store, task(receiver.url("/")), at=None)
        engine = Watching(store, validators=[ensure_protocol("http")])
        once(engine)
    assert seen == [("before", t.id), ("succeeded", t.id)]


def test_a_lease_that_ran_out_is_not_posted() -> None:
    with ListenerThread() as receiver:
        store = MemoryStore()
        (t,) = add(store, task(receiver.url("/")))
        engine = engine_for(store, lease=1e-6)
        once(engine, NOW)
        assert receiver.hooks == []
    assert store.attempts_of(t.id) == []
    assert store.state(t.id) == "pending"


# -- MemoryStore ---------------------------------------------------------------


def test_memory_store_leases_keep_other_owners_out_until_they_expire() -> None:
    store = MemoryStore()
    (t,) = add(store, task("http://example.com/"))
    assert [x.id for x in store.claim(owner="a", limit=5, lease=30, now=NOW)] == [t.id]
    assert store.claim(owner="b", limit=5, lease=30, now=NOW) == []
    assert store.backlog(now=NOW) == 0
    later = NOW + datetime.timedelta(seconds=31)
    assert store.backlog(now=later) == 1
    assert [x.id for x in store.claim(owner="b", limit=5, lease=30, now=later)] == [
        t.id
    ]
    # The first owner's late result is logged but changes nothing.
    stale = AttemptResult(t.id, "succeeded", NOW, 0.1, 200)
    store.record([stale], owner="a", now=later)
    assert store.state(t.id) == "pending"
    assert store.leased_by(t.id) == "b"
    store.record([stale], owner="b", now=later)
    assert store.state(t.id) == "succeeded"
    assert len(store.attempts_of(t.id)) == 2


def test_memory_store_counts_tries_and_hands_out_due_work_oldest_first() -> None:
    store = MemoryStore()
    old = task("http://example.com/old")
    new = task("http://example.com/new")
    store.add(new, next_attempt_at=NOW)
    store.add(old, next_attempt_at=NOW - datetime.timedelta(minutes=1))
    claimed = store.claim(owner="a", limit=1, lease=30, now=NOW)
    assert [x.id for x in claimed] == [old.id]
    retry_at = NOW + datetime.timedelta(seconds=5)
    store.record(
        [AttemptResult(old.id, "retry", NOW, 0.1, 500, next_attempt_at=retry_at)],
        owner="a",
        now=NOW,
    )
    again = store.claim(owner="a", limit=5, lease=30, now=retry_at)
    assert {x.id: x.attempts for x in again} == {new.id: 0, old.id: 1}
    store.release([old.id], owner="a")
    assert store.leased_by(old.id) is None
    with pytest.raises(ValueError, match="already"):
        store.add(old)


def test_memory_store_is_safe_from_many_threads() -> None:
    store = MemoryStore()
    tasks = [task("http://example.com/") for _ in range(400)]
    for t in tasks:
        store.add(t, next_attempt_at=NOW)
    got: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while batch := store.claim(owner=name, limit=7, lease=60, now=NOW):
            with lock:
                got.extend(x.id for x in batch)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(got) == sorted(t.id for t in tasks)


def test_the_engine_benchmark_runs_without_django(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.engine",
            "--store",
            "memory",
            "--count",
            "200",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cases = json.loads(out.read_text())["cases"]
    assert [c["case"] for c in cases] == ["engine-memory", "aiohttp", "floor", "thorn1"]
    assert all(c["per_second"] > 0 for c in cases)
