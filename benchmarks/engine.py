"""Deliveries per second of the outbox engine beside database-free loops, in one run.

    python -m benchmarks.engine [--count 20000] [--rounds 3] [--only CASE ...]
                                [--store sqlite|memory] [--json FILE]

Every case makes the same requests: a 1 KB JSON body with Thorn's headers,
signed with Hook-HMAC and Standard Webhooks (HMAC-SHA256, both), to a
minimal uvloop + httptools receiver in its own process on 127.0.0.1 (it
answers ``200 ok`` and counts; the ``receiver`` column shows how busy it
was, so one can see it is not the bottleneck). The cases take turns for
``--rounds`` rounds of ``--count`` deliveries each (the Thorn 1.x loop
makes a fortieth of that: it is slow) and the median rate is reported:

* ``engine``: the outbox engine (:class:`thorn.engine.core.DeliveryEngine`)
  on the Django store in a temporary SQLite file (WAL, ``synchronous=FULL``:
  each commit is on disk): claims, posts, and records every attempt; the
  time runs until the last attempt is stored. ``--store memory`` leaves it
  out (no Django needed).
* ``engine-memory``: the same engine on ``MemoryStore``: no database, so
  this is what the engine itself costs.
* ``aiohttp``: a raw aiohttp loop, keep-alive, the same concurrency, no
  database.
* ``floor``: the leanest loop we can write, no database: asyncio protocols
  on uvloop with httptools, each connection writing its next request when
  the answer comes.
* ``thorn1``: Thorn 1.x style: sequential ``requests``, a new session (so a
  new connection) per post.

Then the cost of ``send()`` with the outbox dispatcher (microseconds per
event, 1 and 10 subscribers) and one event fanned out to 10,000 subscribers
(seconds until all are delivered), with the Django store.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import gc
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .receiver import ReceiverProcess
from .run import BODY, SECRET

CONCURRENCY = 64
EVENT = "article.created"
SUBSCRIPTION = "7f0c8a2e-1f5e-4a8e-9d57-0c1d2e3f4a5b"


# -- the receiver -------------------------------------------------------------

_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _serve_fast(conn: multiprocessing.connection.Connection) -> None:
    import httptools
    import uvloop

    counter = [0]

    class Answer(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpRequestParser(self)
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_message_complete(self) -> None:
            counter[0] += 1
            self.transport.write(_ANSWER)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Answer, "127.0.0.1", 0, backlog=4096)
        conn.send(server.sockets[0].getsockname()[1])
        while True:
            while not conn.poll():
                await asyncio.sleep(0.005)
            what = conn.recv()
            if what == "count":
                conn.send(counter[0])
            elif what == "cpu":
                times = os.times()
                conn.send(times.user + times.system)
            else:
                conn.send(counter[0])
                server.close()
                return

    uvloop.run(main())


class FastReceiver(ReceiverProcess):
    """``with FastReceiver() as r: r.url("/x")``: answers 200, counts requests;
    :meth:`arrived` asks how many so far."""

    def __init__(self) -> None:
        super().__init__(target=_serve_fast)

    def ask(self, what: str) -> Any:
        self._parent.send(what)
        return self._parent.recv()

    def arrived(self) -> int:
        """Requests answered so far."""
        return int(self.ask("count"))

    def cpu(self) -> float:
        """CPU seconds the receiver process has used so far."""
        return float(self.ask("cpu"))

    def wait_for(self, total: int, timeout: float = 600) -> None:
        """Wait until ``total`` requests have arrived."""
        deadline = time.monotonic() + timeout
        while self.arrived() < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.arrived()} of {total} arrived")
            time.sleep(0.002)


class GcClock:
    """``with GcClock() as c: ...``; ``c.within(since, until)``: seconds the
    garbage collector ran in this process (any thread) between two
    ``time.perf_counter()`` readings."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, float]] = []
        self._began = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began:
            self.runs.append((self._began, time.perf_counter()))
            self._began = 0.0

    def within(self, since: float, until: float) -> float:
        return sum(max(0.0, min(b, until) - max(a, since)) for a, b in self.runs)

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)


# -- what every case sends ----------------------------------------------------


@functools.cache
def static_headers() -> list[tuple[str, str]]:
    """The headers that are the same on every post (Thorn's own set)."""
    from thorn.engine.http import webhook_headers

    headers = webhook_headers(
        event=EVENT,
        delivery_id="",
        content_type="application/json",
        subscription=SUBSCRIPTION,
    )
    return [(k, v) for k, v in headers if k != "Hook-Delivery"]


@functools.cache
def _signer() -> Any:
    from thorn.signing import Signer

    return Signer()


def thorn_headers(delivery_id: str) -> list[tuple[str, str]]:
    """The headers of one try, as the engine makes them (signatures included)."""
    signed = _signer().headers(
        body=BODY,
        msg_id=delivery_id,
        timestamp=int(time.time()),
        secret=SECRET,
        digest="sha256",
    )
    return [*static_headers(), ("Hook-Delivery", delivery_id), *signed.items()]


# -- the cases ----------------------------------------------------------------

#: Makes about ``count`` deliveries; returns (seconds taken, deliveries made).
Case = Callable[[FastReceiver, int], Awaitable[tuple[float, int]]]


def _tasks(url: str, count: int) -> list[Any]:
    from thorn.engine.store import DeliveryTask
    from thorn.request import new_id

    return [
        DeliveryTask(
            id=new_id(),
            message_id="m",
            event=EVENT,
            url=url,
            body=BODY,
            content_type="application/json",
            subscription=SUBSCRIPTION,
            hmac_secret=SECRET,
            hmac_digest="sha256",
            attempts=0,
        )
        for _ in range(count)
    ]


async def _drive_engine(store: Any, count: int) -> tuple[float, int]:
    from thorn.engine.core import DeliveryEngine
    from thorn.validators import ensure_protocol

    stop = asyncio.Event()
    engine = DeliveryEngine(
        store,
        batch=1000,
        concurrency=CONCURRENCY,
        per_host=CONCURRENCY,
        poll_interval=0.05,
        validators=[ensure_protocol("http")],
    )
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    recorded = [0]
    original = store.record

    def _finish() -> None:
        if not finished.done():
            finished.set_result(None)

    def record(results: Any, **kwargs: Any) -> None:
        # The time runs until the last attempt is stored.
        original(results, **kwargs)
        recorded[0] += len(results)
        if recorded[0] >= count:
            loop.call_soon_threadsafe(_finish)

    store.record = record
    start = time.perf_counter()
    runner = loop.create_task(engine.run(stop))
    try:
        await asyncio.wait_for(finished, 600)
    finally:
        elapsed = time.perf_counter() - start
        stop.set()
        await runner
        store.record = original
    if engine.delivered < count:
        raise RuntimeError(f"only {engine.delivered} of {count} delivered")
    return elapsed, count


def engine_memory(receiver: FastReceiver, count: int) -> Awaitable[tuple[float, int]]:
    """The outbox engine on MemoryStore (no database)."""
    from thorn.engine.memory import MemoryStore

    store = MemoryStore()
    for task in _tasks(receiver.url("/engine"), count):
        store.add(task)
    return _drive_engine(store, count)


async def aiohttp_loop(receiver: FastReceiver, count: int) -> tuple[float, int]:
    """A raw aiohttp loop, keep-alive, the same concurrency; no database."""
    import aiohttp

    from thorn.request import new_id

    url = receiver.url("/aiohttp")
    left = [count]
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                headers = thorn_headers(new_id())
                async with session.post(url, data=BODY, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(answer.status)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return time.perf_counter() - start, count


async def floor_loop(receiver: FastReceiver, count: int) -> tuple[float, int]:
    """asyncio protocols on uvloop with httptools; no database."""
    import httptools

    from thorn.engine.http import request_head
    from thorn.request import new_id
    from thorn.signing import Signer
    from thorn.transport.url import parse_url

    loop = asyncio.get_running_loop()
    url = parse_url(receiver.url("/floor"))
    signer = Signer()
    head = request_head(url, static_headers())
    left = [count]
    done = loop.create_future()
    finished = [0]

    def request() -> bytes:
        delivery_id = new_id()
        signed = signer.headers(
            body=BODY,
            msg_id=delivery_id,
            timestamp=int(time.time()),
            secret=SECRET,
            digest="sha256",
        )
        lines = [f"Hook-Delivery: {delivery_id}\r\n"]
        lines.extend(f"{k}: {v}\r\n" for k, v in signed.items())
        lines.append(f"Content-Length: {len(BODY)}\r\n\r\n")
        return head + "".join(lines).encode("latin-1") + BODY

    class Post(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.next()

        def next(self) -> None:
            if left[0] > 0:
                left[0] -= 1
                self.transport.write(request())

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            if self.parser.get_status_code() != 200:
                raise RuntimeError(self.parser.get_status_code())
            finished[0] += 1
            if finished[0] == count:
                done.set_result(None)
            self.next()

    start = time.perf_counter()
    conns = [
        await loop.create_connection(Post, "127.0.0.1", receiver.port)
        for _ in range(min(CONCURRENCY, count))
    ]
    await done
    elapsed = time.perf_counter() - start
    for transport, _ in conns:
        transport.close()
    return elapsed, count


async def thorn1_loop(receiver: FastReceiver, count: int) -> tuple[float, int]:
    """Thorn 1.x style: sequential requests, a new session per post."""
    import requests

    from thorn.request import new_id

    url = receiver.url("/thorn1")
    count = max(1, count // 40)
    start = time.perf_counter()
    for _ in range(count):
        with requests.Session() as session:
            answer = session.post(
                url, data=BODY, headers=dict(thorn_headers(new_id())), timeout=3
            )
            answer.raise_for_status()
    return time.perf_counter() - start, count


_DB_DIR: list[str] = []


def setup_django(folder: str | None = None, *, migrate: bool = True) -> None:
    """Django on a temporary SQLite file (WAL, full sync: commits are durable);
    ``folder``: the one another process made."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    from thorn.validators import ensure_protocol

    if settings.configured:
        return
    folder = folder or tempfile.mkdtemp(prefix="thorn-bench-")
    _DB_DIR.append(folder)
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(folder, "outbox.sqlite3"),
                "OPTIONS": {
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
                    "transaction_mode": "IMMEDIATE",
                },
            }
        },
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "thorn.django",
        ],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        THORN_DISPATCHER="outbox",
        THORN_RECIPIENT_VALIDATORS=[ensure_protocol("http")],
        LOGGING_CONFIG=None,
    )
    django.setup()
    if migrate:
        call_command("migrate", verbosity=0)


def _requests(url: str, count: int) -> list[Any]:
    from thorn.request import Request
    from thorn.subscribers import Subscriber
    from thorn.validators import ensure_protocol

    subscriber = Subscriber(event=EVENT, url=url, hmac_secret=SECRET, uuid=SUBSCRIPTION)
    payload = json.loads(BODY)
    return [
        Request(
            EVENT,
            payload,
            None,
            subscriber,
            body=BODY,
            recipient_validators=[ensure_protocol("http")],
        )
        for _ in range(count)
    ]


def engine_sqlite(receiver: FastReceiver, count: int) -> Awaitable[tuple[float, int]]:
    """The outbox engine on the Django store, a SQLite file (WAL, synchronous)."""
    setup_django()
    from thorn.django.store import DjangoOutboxStore

    store = DjangoOutboxStore()
    store.enqueue(_requests(receiver.url("/engine"), count))
    return _drive_engine(store, count)


def _child_store(folder: str) -> Any:
    """The Django store in the store process of ``engine-sp``."""
    setup_django(folder, migrate=False)
    from thorn.django.store import DjangoOutboxStore

    return DjangoOutboxStore()


def engine_store_process(
    receiver: FastReceiver, count: int
) -> Awaitable[tuple[float, int]]:
    """The outbox engine with its store in a process of its own (as in engine)."""
    setup_django()
    from thorn.django.store import DjangoOutboxStore
    from thorn.engine.process import ProcessStore

    DjangoOutboxStore().enqueue(_requests(receiver.url("/engine-sp"), count))
    store = ProcessStore(_child_store, _DB_DIR[0])
    store.backlog(now=datetime.datetime.now(datetime.UTC))  # started before timing

    async def run() -> tuple[float, int]:
        try:
            return await _drive_engine(store, count)
        finally:
            store.close()

    return run()


def _engine_process(folder: str, go: Any, stop: Any) -> None:
    """One more engine process on the benchmark's SQLite file."""
    from thorn.transport.client import new_event_loop

    setup_django(folder, migrate=False)
    from thorn.django.store import DjangoOutboxStore
    from thorn.engine.core import DeliveryEngine
    from thorn.validators import ensure_protocol

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        engine = DeliveryEngine(
            DjangoOutboxStore(),
            batch=1000,
            concurrency=CONCURRENCY,
            per_host=CONCURRENCY,
            poll_interval=0.02,
            validators=[ensure_protocol("http")],
        )
        go.set()

        def watch() -> None:
            if stop.is_set():
                done.set()
            else:
                loop.call_later(0.05, watch)

        watch()
        await engine.run(done)

    loop = new_event_loop()
    loop.run_until_complete(main())
    loop.close()


async def engine_processes(
    receiver: FastReceiver, count: int, processes: int = 2
) -> tuple[float, int]:
    """Two engine processes on one SQLite file (as in engine).

    (``processes`` of them.) The time runs from the commit of the deliveries
    until every attempt is stored."""
    setup_django()
    from asgiref.sync import sync_to_async
    from django.db import connection

    from thorn.django.models import Delivery
    from thorn.django.store import DjangoOutboxStore

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    children = []
    for _ in range(processes):
        go = ctx.Event()
        child = ctx.Process(target=_engine_process, args=(_DB_DIR[0], go, stop))
        child.start()
        children.append((child, go))
    try:
        for _child, go in children:
            if not go.wait(60):
                raise RuntimeError("an engine process did not start")
        requests = _requests(receiver.url("/engine-processes"), count)
        before = await sync_to_async(
            Delivery.objects.filter(status="succeeded").count
        )()
        await sync_to_async(DjangoOutboxStore().enqueue)(requests)
        start = time.perf_counter()
        succeeded = Delivery.objects.filter(status="succeeded")

        def finished() -> bool:
            try:
                return succeeded.count() - before >= count
            finally:
                connection.close()

        while not await sync_to_async(finished)():
            await asyncio.sleep(0.02)
        return time.perf_counter() - start, count
    finally:
        stop.set()
        for child, _go in children:
            child.join(30)


CASES: dict[str, Case] = {
    "engine": engine_sqlite,  # type: ignore[dict-item]
    "engine-2p": engine_processes,
    "engine-sp": engine_store_process,
    "engine-memory": engine_memory,  # type: ignore[dict-item]
    "aiohttp": aiohttp_loop,
    "floor": floor_loop,
    "thorn1": thorn1_loop,
}


#: The cases on the Django store (left out by ``--store memory``).
DJANGO_CASES = ("engine", "engine-2p", "engine-sp")


def send_cost(
    receiver: FastReceiver, subscribers: int, sends: int
) -> tuple[float, float]:
    """Microseconds per ``send()`` with the outbox: each in its own transaction
    (committed, so durable), and all in one (the commit shared)."""
    from django.db import transaction

    from thorn import Event
    from thorn.django.models import Delivery, Message, Subscriber

    event = f"bench.send{subscribers}"
    Subscriber.objects.bulk_create(
        Subscriber(event=event, url=receiver.url(f"/send/{i}"), hmac_secret=SECRET)
        for i in range(subscribers)
    )
    payload = json.loads(BODY)
    sender = Event(event)
    with transaction.atomic():
        sender.send(payload)  # warm up: caches, prepared statements
    start = time.perf_counter()
    for _ in range(sends):
        with transaction.atomic():
            sender.send(payload)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    with transaction.atomic():
        for _ in range(sends):
            sender.send(payload)
    shared = time.perf_counter() - start
    Delivery.objects.all().delete()
    Message.objects.all().delete()
    return alone / sends * 1e6, shared / sends * 1e6


async def fan_out(
    receiver: FastReceiver, subscribers: int
) -> tuple[float, float, float]:
    """One event to ``subscribers`` subscribers: (send() seconds, seconds to
    all, and the best of 3 lookups of the subscribers alone, in seconds)."""
    from asgiref.sync import sync_to_async
    from django.db import transaction

    from thorn import Event
    from thorn.django.models import Subscriber
    from thorn.django.store import DjangoOutboxStore

    def prepare() -> None:
        Subscriber.objects.bulk_create(
            (
                Subscriber(
                    event="bench.fanout",
                    url=receiver.url(f"/fan/{i}"),
                    hmac_secret=SECRET,
                )
                for i in range(subscribers)
            ),
            batch_size=1000,
        )

    def send() -> float:
        started = time.perf_counter()
        with transaction.atomic():
            Event("bench.fanout").send(json.loads(BODY))
        return time.perf_counter() - started

    def lookup() -> float:
        from thorn.app import app_or_default

        dispatcher = app_or_default(None).dispatcher
        best = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            found = dispatcher.subscribers_for_event("bench.fanout")
            best = min(best, time.perf_counter() - began)
        if len(found) != subscribers:
            raise RuntimeError(f"found {len(found)} of {subscribers} subscribers")
        return best

    await sync_to_async(prepare)()
    looked = await sync_to_async(lookup)()
    started = time.perf_counter()
    sending = await sync_to_async(send)()
    await _drive_engine(DjangoOutboxStore(), subscribers)
    return sending, time.perf_counter() - started, looked


def main(argv: list[str] | None = None) -> int:
    from thorn.transport.client import new_event_loop

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help=f"cases ({', '.join(CASES)})")
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument(
        "--fan-out", type=int, default=10_000, help="subscribers (0: leave it out)"
    )
    parser.add_argument(
        "--sends", type=int, default=500, help="send() calls timed (0: leave out)"
    )
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="leave Python's garbage collector as it is (by default it is tuned "
        "as thorn_worker tunes it: thorn.engine.tuning.tune_gc)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = args.only or list(CASES)
    if args.store == "memory":
        names = [name for name in names if name not in DJANGO_CASES]
    rates: dict[str, list[float]] = {name: [] for name in names}
    busy: dict[str, list[float]] = {name: [] for name in names}
    collecting: dict[str, list[float]] = {name: [] for name in names}
    if set(DJANGO_CASES) & set(names):
        setup_django()  # not in the loop: Django's setup is synchronous
    gc_note = "Python's garbage collector as it is"
    if not args.python_gc:
        # As thorn_worker and serve do once set up; every case runs with it.
        from thorn.engine.tuning import GC_THRESHOLD, tune_gc

        tune_gc()
        gc_note = f"gc tuned as thorn_worker does (frozen, threshold {GC_THRESHOLD:,})"
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    with FastReceiver() as receiver:
        for name in names:  # warm up
            loop.run_until_complete(CASES[name](receiver, 500))
        for _ in range(args.rounds):
            for name in names:
                cpu = receiver.cpu()
                with GcClock() as gc_clock:
                    seconds, done = loop.run_until_complete(
                        CASES[name](receiver, args.count)
                    )
                    # The timed part ends about now (the cases' teardown
                    # is short): its collections, over its time.
                    ended = time.perf_counter()
                rates[name].append(done / seconds)
                # The receiver's share of one core while the case ran (for
                # the engine case, setup is not timed but its idle time
                # counts: a lower bound there).
                busy[name].append((receiver.cpu() - cpu) / seconds)
                collecting[name].append(
                    gc_clock.within(ended - seconds, ended) / seconds
                )
        costs: dict[int, tuple[float, float]] = {}
        fanned: tuple[float, float, float] | None = None
        if "engine" in names and args.sends > 0:
            for subscribers in (1, 10):
                costs[subscribers] = send_cost(receiver, subscribers, args.sends)
        if "engine" in names and args.fan_out > 0:
            fanned = loop.run_until_complete(fan_out(receiver, args.fan_out))
    loop.close()
    results = [
        {
            "case": name,
            "per_second": statistics.median(rates[name]),
            "rounds": rates[name],
            "receiver_busy": statistics.median(busy[name]),
            "gc_share": statistics.median(collecting[name]),
            "about": (CASES[name].__doc__ or "").strip().splitlines()[0],
        }
        for name in names
    ]
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}; {len(BODY)}-byte JSON signed twice, "
        f"to a receiver process on 127.0.0.1; concurrency {CONCURRENCY}"
    )
    print(
        f"# median of {args.rounds} rounds of {args.count} deliveries "
        f"per case; {gc_note}"
    )
    floor = next((r["per_second"] for r in results if r["case"] == "floor"), None)
    print(
        f"{'case':14} {'deliveries/s':>13} {'vs floor':>9} {'receiver':>9} "
        f"{'gc':>5}  about"
    )
    for r in results:
        ratio = f"{r['per_second'] / floor:8.2f}x" if floor else f"{'':9}"
        print(
            f"{r['case']:14} {r['per_second']:13,.0f} {ratio} "
            f"{r['receiver_busy']:8.0%} {r['gc_share']:5.1%}  {r['about']}"
        )
    print(
        "# receiver: its CPU use while the case ran, in share of one core; gc: "
        "about the share of the timed part this process spent collecting garbage"
    )
    for subscribers, (alone, shared) in costs.items():
        print(
            f"send() with the outbox, {subscribers:2} subscriber"
            f"{'s' if subscribers > 1 else ' '}: {alone:7,.0f} us per event in "
            f"its own transaction (committed), {shared:5,.0f} us in a shared one"
        )
    if fanned is not None:
        print(
            f"one event to {args.fan_out:,} subscribers: send() {fanned[0]:.2f}s, "
            f"all delivered and recorded {fanned[1]:.2f}s after send() began "
            f"(finding the subscribers alone: {fanned[2]:.3f}s)"
        )
    if args.json:
        extra = {"send_us": costs, "fan_out": fanned}
        args.json.write_text(json.dumps({"cases": results, **extra}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
