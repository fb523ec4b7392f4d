"""The Celery dispatcher without a database: a real Redis, real worker processes.

Each test starts its own ``redis-server`` (``tests/redis_server.py``) and
``celery worker`` processes running ``tests/celeryapp.py``; the requests go
to real HTTP receivers on 127.0.0.1. Every load here is bounded in count
and in time, and stops by itself.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeryapp import Worker
from redis_server import (  # noqa: F401 (fixtures)
    RedisServer,
    durable_redis_server_fixture,
    redis_server_fixture,
)
from thorn.dispatch.celery import (
    request_to_wire,
    requests_to_wire,
    resolve_wire,
    task_from_wire,
)
from thorn.exceptions import ImproperlyConfigured
from thorn.listener import Hook, ListenerThread, Reply
from thorn.receiver import verify_request
from thorn.request import Request, new_id
from thorn.subscribers import Subscriber

TESTS = Path(__file__).parent
SECRET = "celery-secret-Zq7Wd2Kp9Lm4Xv1B"


# -- workers and apps ------------------------------------------------------------------


StartWorker = Callable[..., Worker]


@pytest.fixture(autouse=True)
def runtimes_closed() -> Iterator[None]:
    """Tasks called in this process start Thorn's worker loop: stop it after."""
    from thorn.tasks import close_runtimes

    yield
    close_runtimes()


@pytest.fixture
def start_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[StartWorker]:
    """Start worker processes on the test's Redis; all are killed afterwards."""
    started: list[Worker] = []

    def start(
        *,
        settings: dict[str, Any] | None = None,
        pool: str = "solo",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        broker: RedisServer | None = None,
    ) -> Worker:
        log = tmp_path / f"worker{len(started)}.log"
        environ = dict(os.environ)
        environ.pop("DJANGO_SETTINGS_MODULE", None)
        environ.update(
            PYTHONPATH=str(TESTS),
            THORN_TEST_REDIS_URL=(broker or redis_server).url,
            THORN_TEST_WORKER="1",
            THORN_TEST_SETTINGS=json.dumps(settings or {}),
            **(env or {}),
        )
        worker = Worker.start(
            environ,
            log,
            cwd=tmp_path,
            pool=pool,
            concurrency=concurrency,
            name=f"w{len(started)}",
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def celery_app(redis_server: RedisServer) -> Iterator[Any]:
    """The publishing side's Celery app, on the test's Redis, made current."""
    from celery import _state

    import celeryapp

    previous = _state.get_current_app()
    celery = celeryapp.make_celery(redis_server.url)
    celery.set_current()
    celery.set_default()
    yield celery
    celery.close()
    previous.set_current()
    previous.set_default()


def celery_thorn(make_app: Any, **settings: Any) -> Any:
    settings.setdefault("THORN_DISPATCHER", "celery")
    return make_app(**settings)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# -- what the dispatcher publishes -----------------------------------------------------


def test_100_buffered_events_to_10_subscribers_arrive_signed_in_10_messages(
    redis_server: RedisServer,
    celery_app: Any,
    make_app: Any,
    start_worker: StartWorker,
) -> None:
    with ListenerThread(secret=SECRET) as receiver:
        subscribers = [
            {"url": receiver.url(f"/hook/{i}"), "hmac_secret": SECRET}
            for i in reversed(range(10))
        ]
        app = celery_thorn(make_app, THORN_SUBSCRIBERS={"article.created": subscribers})
        with _Buffered(app):
            for n in range(100):
                app.Event("article.created").send({"n": n, "text": "x" * 900})
            assert redis_server.pushes() == 0  # buffered: nothing published yet
        messages = redis_server.queue()
        # The manual: chunk size 10 means 100 events reach workers in 10 messages.
        assert len(messages) == 10
        assert redis_server.pushes() == 10
        for message in messages:
            assert message["task"] == "thorn.tasks.dispatch_requests"
            assert message["content_type"] == "application/json"
            written = message["args"][0]
            # Each event's body once: the other nine subscribers refer to it.
            assert sum("body" in r for r in written) == 10
            requests = resolve_wire(written)
            assert len(requests) == 100
            assert len({r["message_id"] for r in requests}) == 10  # ten events
            urls = [r["url"] for r in requests]
            assert urls == sorted(urls)  # sorted by URL: keep-alive helps
        worker = start_worker()
        hooks = receiver.wait_for(1000, timeout=90)
        wait_until(lambda: redis_server.drained(), 30, "the queue to drain")
    assert len(hooks) == 1000
    assert all(hook.verified and hook.error is None for hook in hooks)
    ids = {hook.header("hook-delivery") for hook in hooks}
    assert len(ids) == 1000
    assert all(
        hook.header("webhook-id") == hook.header("hook-delivery") for hook in hooks
    )
    assert {hook.json()["n"] for hook in hooks} == set(range(100))
    assert collections.Counter(hook.path for hook in hooks) == {
        f"/hook/{i}": 100 for i in range(10)
    }
    assert redis_server.pushes() == 10  # nothing was published again
    assert SECRET not in worker.log()


class _Buffered:
    """``with _Buffered(app):`` buffer the app's events, flush on exit."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __enter__(self) -> None:
        self.app.enable_buffer()

    def __exit__(self, *exc: object) -> None:
        self.app.flush_buffer()
        self.app.disable_buffer()


def test_an_event_to_many_subscribers_is_split_and_each_message_sorted_by_url(
    redis_server: RedisServer, celery_app: Any, make_app: Any
) -> None:
    hosts = ["http://127.0.0.3:9000", "http://127.0.0.2:9000", "https://127.0.0.2"]
    subscribers = [f"{hosts[i % 3]}/s/{i}" for i in range(2500)]
    app = celery_thorn(make_app, THORN_SUBSCRIBERS={"big.fanout": subscribers})
    app.Event("big.fanout").send({"n": 1})
    messages = redis_server.queue()
    assert sorted(len(m["args"][0]) for m in messages) == [500, 1000, 1000]
    resolved = [resolve_wire(m["args"][0]) for m in messages]
    assert {r["url"] for m in resolved for r in m} == set(subscribers)
    for requests in resolved:
        origins = [r["url"].split("/s/")[0] for r in requests]
        # (scheme, host, port): http before https, then host, then port.
        order = [
            ("http", "127.0.0.2", 9000),
            ("http", "127.0.0.3", 9000),
            ("https", "127.0.0.2", 443),
        ]
        keys = [order.index(_origin(origin)) for origin in origins]
        assert keys == sorted(keys)


def _origin(origin: str) -> tuple[str, str, int]:
    scheme, rest = origin.split("://")
    host, _, port = rest.partition(":")
    return (scheme, host, int(port) if port else 443)


def test_one_unbuffered_send_is_one_message_and_chunksize_counts_events(
    redis_server: RedisServer, celery_app: Any, make_app: Any
) -> None:
    subscribers = {"a.b": ["http://127.0.0.1:9/x", "http://127.0.0.1:9/y"]}
    app = celery_thorn(make_app, THORN_SUBSCRIBERS=subscribers, THORN_CHUNKSIZE=3)
    app.Event("a.b").send({"n": 0})
    assert [len(m["args"][0]) for m in redis_server.queue()] == [2]
    redis_server.command("DEL", "celery")
    with _Buffered(app):
        for n in range(7):
            app.Event("a.b").send({"n": n})
    sizes = sorted(len(m["args"][0]) for m in redis_server.queue())
    assert sizes == [2, 6, 6]  # 7 events in chunks of 3 events


def test_chunksize_must_be_a_whole_number_above_zero(make_app: Any) -> None:
    for bad in (0, -1, 2.5, "10", True):
        app = celery_thorn(
            make_app,
            THORN_CHUNKSIZE=bad,
            THORN_SUBSCRIBERS={"a.b": "http://127.0.0.1:9/x"},
        )
        with pytest.raises(ImproperlyConfigured, match="THORN_CHUNKSIZE"):
            app.Event("a.b").send({"n": 0})


def test_outbox_mode_needs_django(make_app: Any) -> None:
    app = celery_thorn(
        make_app,
        THORN_CELERY_OUTBOX=True,
        THORN_SUBSCRIBERS={"a.b": "http://127.0.0.1:9/x"},
    )
    with pytest.raises(ImproperlyConfigured, match=r"thorn\.django"):
        app.Event("a.b").send({"n": 0})


# -- the message form ------------------------------------------------------------------


def _request(url: str, **options: Any) -> Request:
    sub = Subscriber(event="a.b", url=url, hmac_secret=SECRET, uuid=new_id())
    return Request("a.b", {"n": 1}, None, sub, recipient_validators=(), **options)


def test_a_request_travels_as_json_and_comes_back_the_same() -> None:
    request = _request("http://127.0.0.1:9/x", headers={"X-Tenant": "7"})
    request.body = b"\xff\x00binary"
    item = request_to_wire(request)
    assert json.loads(json.dumps(item)) == item
    assert "body" not in item
    assert item["body_b64"]
    task = task_from_wire(item)
    assert task.body == b"\xff\x00binary"
    assert task.id == request.id
    assert ("X-Tenant", "7") in task.headers
    assert task.hmac_secret == SECRET
    assert task.subscription == request.subscription


def test_a_message_gives_what_its_requests_share_once() -> None:
    one = Subscriber(event="a.b", url="http://127.0.0.1:9/1", hmac_secret=SECRET)
    two = Subscriber(
        event="a.b", url="http://127.0.0.1:9/2", extra_secrets=("old-Kd8Wq2",)
    )
    first = Request("a.b", {"n": 1}, None, one, recipient_validators=())
    second = Request("a.b", {"n": 1}, None, two, recipient_validators=())
    third = Request("a.b", {"n": 2}, None, one, recipient_validators=())
    first.body = second.body = b'{"n":1}'
    third.body = b"\xff"
    for request in (first, second):
        request.message_id = "m1"  # type: ignore[attr-defined]
    third.message_id = "m2"  # type: ignore[attr-defined]
    written = requests_to_wire([first, second, third])
    assert written[1]["like"] == 0
    assert "body" not in written[1]
    assert "policy" not in written[1]
    assert "event" not in written[1]
    assert written[2]["like"] == 0
    assert "body_b64" in written[2]
    whole = resolve_wire(written)
    assert whole == [request_to_wire(r) for r in (first, second, third)]
    assert task_from_wire(whole[1]).extra_secrets == ("old-Kd8Wq2",)
    assert task_from_wire(whole[2]).body == b"\xff"
    for bad in (-1, 2, "0", None):
        with pytest.raises(ValueError, match="'like' must be the index"):
            resolve_wire([written[0], {"like": bad, "id": "x"}])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("3f2a", "delivery ids"),
        ({"event": "a.b", "url": "http://x/", "body": ""}, "'id'"),
        ({"id": "1", "event": "a.b", "body": ""}, "'url'"),
        ({"id": "1", "event": "a.b", "url": "http://x/", "body": 5}, "'body'"),
        (
            {"id": "1", "event": "a", "url": "http://x/", "body": "", "pickle": 1},
            "unknown",
        ),
        ({"id": "1", "event": "a", "url": "u", "body_b64": "!!"}, "base64"),
        ({"id": "1", "event": "a", "url": "u", "body": "", "attempts": -1}, "attempts"),
        ({"id": "1", "event": "a", "url": "u", "body": "", "timeout": 0}, "timeout"),
        (
            {"id": "1", "event": "a", "url": "u", "body": "", "headers": [["a"]]},
            "pairs",
        ),
        (
            {"id": "1", "event": "a", "url": "u", "body": "", "policy": {"x": 1}},
            "policy",
        ),
    ],
)
def test_a_malformed_request_is_refused_naming_what_is_wrong(
    item: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        task_from_wire(item)


def test_the_task_refuses_a_message_it_cannot_process(make_app: Any) -> None:
    from thorn.tasks import dispatch_requests

    make_app()
    with pytest.raises(TypeError, match="list of delivery ids or requests"):
        dispatch_requests({"id": "x"})
    with pytest.raises(ValueError, match="mixes kinds"):
        dispatch_requests(["id", {"id": "x"}])
    with pytest.raises(ValueError, match="request 0 of the message"):
        dispatch_requests([{"id": "1"}])
    with pytest.raises(ImproperlyConfigured, match="needs the outbox"):
        dispatch_requests([new_id()])


def test_the_task_called_in_process_posts_through_the_engine(
    make_app: Any, receiver: ListenerThread
) -> None:
    from thorn.tasks import dispatch_requests

    make_app()
    items = [request_to_wire(_request(receiver.url(f"/direct/{i}"))) for i in range(5)]
    dispatch_requests(items)
    hooks = receiver.wait_for(5)
    assert {h.header("hook-delivery") for h in hooks} == {i["id"] for i in items}
    assert all(verify_request(h.body, h.headers, SECRET) for h in hooks)


def test_the_worker_sends_thorns_delivery_signals(
    make_app: Any, receiver: ListenerThread
) -> None:
    from thorn import signals
    from thorn.tasks import dispatch_requests

    make_app()
    receiver.route("/gone", Reply(status=410))
    heard: list[tuple[str, str, str]] = []

    def note(name: str) -> Callable[..., None]:
        def receive(task: Any, **kwargs: Any) -> None:
            heard.append((name, task.url.rsplit("/", 1)[1], kwargs["result"].outcome))

        return receive

    receivers = {
        sig: note(name)
        for name, sig in [
            ("attempted", signals.delivery_attempted),
            ("succeeded", signals.delivery_succeeded),
            ("failed", signals.delivery_failed),
            ("exhausted", signals.delivery_exhausted),
        ]
    }
    for sig, receive in receivers.items():
        sig.connect(receive)
    try:
        dispatch_requests(
            [request_to_wire(_request(receiver.url(p))) for p in ("/ok", "/gone")]
        )
    finally:
        for sig, receive in receivers.items():
            sig.disconnect(receive)
    assert sorted(heard) == [
        ("attempted", "gone", "gone"),
        ("attempted", "ok", "succeeded"),
        ("exhausted", "gone", "gone"),
        ("failed", "gone", "gone"),
        ("succeeded", "ok", "succeeded"),
    ]


# -- workers: retries, fan-out, restarts, kills ----------------------------------------


def test_failed_requests_are_retried_by_celery_with_the_same_id_and_410_is_final(
    redis_server: RedisServer,
    celery_app: Any,
    make_app: Any,
    start_worker: StartWorker,
) -> None:
    with ListenerThread() as receiver:
        receiver.route(
            "/flaky", [Reply(status=500), Reply(status=503), Reply(status=204)]
        )
        receiver.route("/gone", Reply(status=410))
        password = "pw-Jk3Nq8Rt"
        gone = receiver.url("/gone").replace("//", f"//user:{password}@")
        app = celery_thorn(
            make_app,
            THORN_RETRY=True,
            THORN_RETRY_DELAY=0.3,
            THORN_RETRY_BACKOFF=False,
            THORN_SUBSCRIBERS={
                "order.paid": [
                    {"url": receiver.url("/flaky"), "hmac_secret": SECRET},
                    {"url": gone, "hmac_secret": SECRET},
                ]
            },
        )
        app.Event("order.paid").send({"id": 1})
        worker = start_worker()
        receiver.wait_for(4, timeout=60)
        wait_until(lambda: redis_server.drained(), 30, "the retries to finish")
        hooks = list(receiver.hooks)
    flaky = [h for h in hooks if h.path == "/flaky"]
    assert len(flaky) == 3
    assert len({h.header("hook-delivery") for h in flaky}) == 1
    assert [h.path for h in hooks].count("/gone") == 1  # 410 Gone: never again
    assert redis_server.pushes() == 3  # the send, then two retries
    log = worker.log()
    assert "giving up on order.paid" in log
    assert "retry" in log.lower()
    assert SECRET not in log
    assert password not in log


def test_send_event_and_dispatch_request_run_in_the_worker(
    redis_server: RedisServer, celery_app: Any, start_worker: StartWorker
) -> None:
    from thorn.tasks import dispatch_request, send_event

    with ListenerThread(secret=SECRET) as receiver:
        start_worker(
            settings={
                "THORN_SUBSCRIBERS": {
                    "user.*": [
                        {"url": receiver.url(f"/user/{i}"), "hmac_secret": SECRET}
                        for i in range(3)
                    ]
                }
            }
        )
        send_event.delay("user.created", {"id": 7}, None, 3.0)
        dispatch_request.delay(
            "user.deleted",
            {"id": 8},
            None,
            {"url": receiver.url("/one"), "hmac_secret": SECRET},
            id=new_id(),
        )
        hooks = receiver.wait_for(4, timeout=60)
    assert sorted(h.path for h in hooks) == ["/one", "/user/0", "/user/1", "/user/2"]
    assert all(h.verified for h in hooks)
    assert {h.header("hook-event") for h in hooks} == {"user.created", "user.deleted"}


def _counting_receiver(
    delay: float = 0.0,
) -> tuple[ListenerThread, collections.Counter[str], threading.Lock]:
    seen: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def count(hook: Hook) -> Reply:
        with lock:
            seen[hook.header("hook-delivery") or ""] += 1
        return Reply(delay=delay)

    return ListenerThread(record=False, handler=count), seen, lock


def test_two_workers_share_the_work_and_none_is_lost(
    redis_server: RedisServer,
    celery_app: Any,
    make_app: Any,
    start_worker: StartWorker,
) -> None:
    receiver, seen, _lock = _counting_receiver()
    with receiver:
        app = celery_thorn(
            make_app,
            THORN_SUBSCRIBERS={
                "load.test": [receiver.url(f"/l/{i}") for i in range(20)]
            },
        )
        workers = [start_worker(env={"THORN_TEST_PREFETCH": "1"}) for _ in range(2)]
        for worker in workers:
            worker.wait_ready()
        with _Buffered(app):
            for n in range(200):
                app.Event("load.test").send({"n": n})
        wait_until(lambda: len(seen) >= 4000, 120, "4000 deliveries")
        wait_until(lambda: redis_server.drained(), 30, "the queue to drain")
    wait_until(
        lambda: sum(w.log().count("succeeded in") for w in workers) >= 20,
        30,
        "the workers to log every task",
    )
    handled = [w.log().count("succeeded in") for w in workers]
    assert sum(handled) == 20
    assert all(handled), f"one worker did all the work: {handled}"
    assert redis_server.pushes() == 20
    assert len(seen) == 4000  # none lost
    duplicates = sum(seen.values()) - len(seen)
    assert duplicates == 0  # each message went to one worker, once
    print(f"\nmessages per worker: {handled}; duplicates: {duplicates}")


def test_queued_messages_survive_a_broker_crash_and_the_worker_reconnects(
    durable_redis_server: RedisServer,
    make_app: Any,
    start_worker: StartWorker,
) -> None:
    # Without a database the broker holds the only copy: a Redis that keeps
    # an append-only file (synced on every write) keeps the queue through a
    # crash. (A message a worker takes at the very instant Redis dies can
    # still be lost: BRPOP is not acknowledged. The outbox mode's sweeper
    # covers that; see tests/django/test_django_celery.py.)
    import celeryapp

    server = durable_redis_server
    celery = celeryapp.make_celery(server.url)
    celery.set_current()
    receiver, seen, _lock = _counting_receiver()
    total = 0
    with receiver:
        app = celery_thorn(
            make_app,
            THORN_SUBSCRIBERS={"r.test": [receiver.url(f"/r/{i}") for i in range(10)]},
        )

        def publish(events: int) -> None:
            nonlocal total
            with _Buffered(app):
                for n in range(events):
                    app.Event("r.test").send({"n": n})
            total += events * 10

        publish(100)
        server.restart(kill=True)  # a crash, with ten messages queued
        assert server.llen() == 10
        start_worker(broker=server)
        wait_until(lambda: len(seen) >= total, 60, "the queued deliveries")
        wait_until(lambda: server.drained(), 30, "the queue to drain")
        server.restart(kill=True, down=0.5)  # while the worker waits for work
        publish(50)  # the producer reconnects, and so does the worker
        wait_until(lambda: len(seen) >= total, 90, f"{total} deliveries")
    celery.close()
    assert server.restarts == 2
    assert len(seen) == total == 1500
    assert sum(seen.values()) == total  # and nothing twice


@pytest.mark.slow
def test_a_pool_process_killed_mid_chunk_gives_its_message_back(
    redis_server: RedisServer,
    celery_app: Any,
    make_app: Any,
    start_worker: StartWorker,
) -> None:
    receiver, seen, _lock = _counting_receiver(delay=0.05)
    with receiver:
        app = celery_thorn(
            make_app,
            THORN_MAX_CONNECTIONS_PER_HOST=4,
            THORN_SUBSCRIBERS={"k.test": [receiver.url(f"/k/{i}") for i in range(10)]},
        )
        with _Buffered(app):
            for n in range(50):
                app.Event("k.test").send({"n": n})
        worker = start_worker(pool="prefork", env={"THORN_TEST_PREFETCH": "1"})
        wait_until(lambda: len(seen) >= 20, 60, "the first chunk to start")
        (child,) = worker.children()
        os.kill(child, signal.SIGKILL)
        at_kill = len(seen)
        wait_until(lambda: len(seen) >= 500, 90, "every delivery")
        wait_until(lambda: redis_server.drained(), 30, "the queue to drain")
    assert at_kill < 500
    assert len(seen) == 500
    assert "WorkerLostError" in worker.log() or "exited" in worker.log().lower()
    duplicates = sum(seen.values()) - len(seen)
    assert duplicates > 0  # the killed chunk was posted again, from the start


@pytest.mark.slow
def test_the_benchmark_command_runs_and_reports_its_cases(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # (redis_server: only to skip, or fail in CI, where there is no Redis.)
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.celery_dispatch",
            "--count",
            "200",
            "--rounds",
            "1",
            "--only",
            "engine-memory",
            "celery-1",
            "--json",
            str(out),
        ],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cases = json.loads(out.read_text())["cases"]
    assert [case["case"] for case in cases] == ["engine-memory", "celery-1"]
    assert all(case["per_second"] > 0 for case in cases)
    assert "deliveries/s" in result.stdout
