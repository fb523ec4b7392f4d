"""Deliveries per second of the Celery dispatcher, beside the outbox engine, in one run.

    python -m benchmarks.celery_dispatch [--count 20000] [--rounds 3]
        [--subscribers 10] [--chunksize 10] [--pool solo|threads] [--threads 4]
        [--only CASE ...] [--json FILE]

Every case makes the same deliveries: a 1 KB JSON body signed with
Hook-HMAC and Standard Webhooks (HMAC-SHA256), to a uvloop + httptools
receiver in its own process on 127.0.0.1 that answers ``200 ok`` and
counts. The Celery cases use a ``redis-server`` the command starts (on a
free port, nothing kept on disk) and real ``celery worker`` processes
(``--pool=solo`` by default: one OS process each, one task at a time,
Thorn's loop thread inside):

* ``engine``: the outbox engine on the Django store in a SQLite file, as
  ``benchmarks.engine`` runs it (one process; every attempt stored);
* ``engine-memory``: the same engine on ``MemoryStore`` (no database);
* ``celery-1`` / ``celery-2``: ``THORN_DISPATCHER = "celery"`` without a
  database (the messages carry the requests), one / two worker processes;
* ``celery-outbox-1`` / ``celery-outbox-2``: the Celery dispatcher in
  outbox mode on the same SQLite file (messages carry delivery ids; each
  worker leases them, posts, and records every attempt), one / two workers.

For a Celery case the events are sent (buffered: ``--count`` deliveries as
``count / subscribers`` events of ``--subscribers`` subscribers each, in
messages of ``--chunksize`` events) into a staging queue while the workers
wait, warmed up, on an empty one; the clock starts when the staging queue
is renamed to theirs (one Redis command: both workers wake at once) and
stops when the receiver has counted every delivery (outbox cases: when
every attempt is stored). What it measures is the workers: taking
messages, posting, acknowledging; ``send()`` is not in it.

The cases take turns for ``--rounds`` rounds; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from .engine import FastReceiver
from .run import BODY, SECRET

ROOT = Path(__file__).parents[1]
EVENT = "bench.celery"
QUEUE = "thorn-bench"
STAGING = "thorn-bench-staging"
#: Requests in flight at once per worker, and per host (the engine
#: benchmark's concurrency).
CONCURRENCY = 64


# -- the Celery app of the worker processes -----------------------------------------


def make_app(broker: str, **conf: Any) -> Celery:
    """A Celery app on ``broker`` with Thorn's tasks, JSON only."""
    celery = Celery("thorn-bench", broker=broker, include=["thorn.tasks"])
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
        **conf,
    )
    return celery


#: ``celery -A benchmarks.celery_dispatch worker`` runs this app.
app = make_app(os.environ.get("THORN_BENCH_BROKER", "redis://127.0.0.1:6379/0"))


def _worker_is_ready(**kwargs: Any) -> None:
    ready = os.environ.get("THORN_BENCH_READY")
    if ready:
        Path(ready).touch()


if os.environ.get("THORN_BENCH_WORKER"):
    worker_ready.connect(_worker_is_ready, weak=False)
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        from thorn import Thorn
        from thorn.validators import ensure_protocol

        Thorn(
            settings={
                "THORN_RECIPIENT_VALIDATORS": [ensure_protocol("http")],
                "THORN_MAX_CONNECTIONS_PER_HOST": CONCURRENCY,
                "THORN_MAX_CONNECTIONS": CONCURRENCY,
            },
            set_as_current=False,
        ).set_default()


# -- Redis, the receiver, the workers ----------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Redis:
    """A throw-away ``redis-server`` on 127.0.0.1 (no persistence)."""

    def __init__(self) -> None:
        program = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(program):
            raise SystemExit("this benchmark needs redis-server on PATH")
        self.port = _free_port()
        self.folder = tempfile.mkdtemp(prefix="thorn-bench-redis-")
        self.proc = subprocess.Popen(
            [
                program,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.folder,
            ],
            stdout=subprocess.DEVNULL,
        )
        import redis

        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def release(self) -> None:
        """Hand the staged messages to the workers, at once."""
        self.client.rename(STAGING, QUEUE)

    def close(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


class Workers:
    """``n`` solo worker processes on the bench queue, ready and warmed up."""

    def __init__(
        self,
        n: int,
        redis: Redis,
        env: dict[str, str],
        *,
        pool: str = "solo",
        threads: int = 1,
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="thorn-bench-workers-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        env = dict(env)
        path = [str(ROOT), *filter(None, env.pop("PYTHONPATH", "").split(os.pathsep))]
        for index in range(n):
            ready = self.folder / f"ready{index}"
            environ = dict(os.environ)
            environ.update(
                PYTHONPATH=os.pathsep.join(path),
                THORN_BENCH_BROKER=redis.url,
                THORN_BENCH_WORKER="1",
                THORN_BENCH_READY=str(ready),
                **env,
            )
            log = (self.folder / f"worker{index}.log").open("wb")
            self.procs.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).with_name("celery")),
                        "-A",
                        "benchmarks.celery_dispatch",
                        "worker",
                        f"--pool={pool}",
                        f"--concurrency={threads}",
                        f"--hostname=bench{index}@%h",
                        "-Q",
                        QUEUE,
                        "--without-heartbeat",
                        "--without-gossip",
                        "--without-mingle",
                        "-l",
                        "warning",
                    ],
                    env=environ,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        deadline = time.monotonic() + 60
        for index, proc in enumerate(self.procs):
            while not (self.folder / f"ready{index}").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (self.folder / f"worker{index}.log").read_text()
                    self.close()
                    raise RuntimeError(f"a worker did not start:\n{log_text}")
                time.sleep(0.02)

    def cpu(self) -> float:
        """CPU seconds the worker processes have used so far."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1]
            utime, stime = fields.split()[11:13]
            total += (int(utime) + int(stime)) / ticks
        return total

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


# -- what the Celery cases send ----------------------------------------------------


def _subscribers(receiver: FastReceiver, n: int) -> list[dict[str, Any]]:
    return [
        {"url": receiver.url(f"/celery/{i}"), "hmac_secret": SECRET} for i in range(n)
    ]


def _stage(thorn_app: Any, events: int) -> None:
    """Send ``events`` buffered events (published to the staging queue)."""
    payload = json.loads(BODY)
    event = thorn_app.Event(EVENT)
    thorn_app.enable_buffer()
    try:
        for _ in range(events):
            event.send(payload)
    finally:
        thorn_app.flush_buffer()
        thorn_app.disable_buffer()


class _Outbox:
    """The outbox cases' database: the engine benchmark's SQLite file, and a
    settings module the worker processes read it with."""

    def __init__(self) -> None:
        from . import engine as engine_bench

        engine_bench.setup_django()
        from django.conf import settings

        self.path = settings.DATABASES["default"]["NAME"]
        self.folder = Path(self.path).parent
        database = dict(settings.DATABASES["default"])
        (self.folder / "bench_celery_settings.py").write_text(
            textwrap.dedent(
                f"""
                from thorn.validators import ensure_protocol

                SECRET_KEY = "benchmark"
                DATABASES = {{"default": {database!r}}}
                DATABASES["default"]["OPTIONS"]["timeout"] = 60
                INSTALLED_APPS = [
                    "django.contrib.contenttypes",
                    "django.contrib.auth",
                    "thorn.django",
                ]
                USE_TZ = True
                DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
                THORN_DISPATCHER = "celery"
                THORN_RECIPIENT_VALIDATORS = [ensure_protocol("http")]
                THORN_MAX_CONNECTIONS_PER_HOST = {CONCURRENCY}
                THORN_MAX_CONNECTIONS = {CONCURRENCY}
                LOGGING_CONFIG = None
                """
            )
        )

    def env(self) -> dict[str, str]:
        return {
            "PYTHONPATH": str(self.folder),
            "DJANGO_SETTINGS_MODULE": "bench_celery_settings",
        }

    def succeeded(self) -> int:
        with sqlite3.connect(self.path, timeout=60) as db:
            (count,) = db.execute(
                "SELECT count(*) FROM thorn_delivery WHERE status = 'succeeded'"
            ).fetchone()
        db.close()
        return int(count)


def _wait_recorded(holder: _Outbox, total: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while holder.succeeded() < total:
        if time.monotonic() > deadline:
            raise RuntimeError("the attempts were not all recorded")
        time.sleep(0.01)


def _celery_case(
    workers: int, *, outbox: bool
) -> Callable[[FastReceiver, Redis, argparse.Namespace], tuple[float, int]]:
    def run(
        receiver: FastReceiver, redis: Redis, args: argparse.Namespace
    ) -> tuple[float, int]:
        from thorn import Thorn
        from thorn.validators import ensure_protocol

        holder = _Outbox() if outbox else None
        producer = make_app(redis.url, task_default_queue=STAGING)
        producer.set_current()
        thorn_app = Thorn(
            settings={
                "THORN_DISPATCHER": "celery",
                "THORN_CELERY_OUTBOX": outbox,
                "THORN_CHUNKSIZE": args.chunksize,
                "THORN_SUBSCRIBERS": {EVENT: _subscribers(receiver, args.subscribers)},
                "THORN_RECIPIENT_VALIDATORS": [ensure_protocol("http")],
            },
            set_as_current=False,
        )
        events = max(1, args.count // args.subscribers)
        total = events * args.subscribers
        running = Workers(
            workers,
            redis,
            holder.env() if holder else {},
            pool=args.pool,
            threads=args.threads if args.pool == "threads" else 1,
        )
        try:
            # Warm up every worker: its loop thread, its connections.
            before = receiver.arrived()
            base = holder.succeeded() if holder else 0
            _stage(thorn_app, args.chunksize * 4 * workers)
            redis.release()
            warm = args.chunksize * 4 * workers * args.subscribers
            receiver.wait_for(before + warm)
            if holder:
                _wait_recorded(holder, base + warm)
            _stage(thorn_app, events)
            before = receiver.arrived()
            base = holder.succeeded() if holder else 0
            cpu = running.cpu()
            start = time.perf_counter()
            redis.release()
            receiver.wait_for(before + total)
            if holder:
                _wait_recorded(holder, base + total)
            elapsed = time.perf_counter() - start
            WORKER_CPU.append((running.cpu() - cpu) / elapsed / workers)
        finally:
            running.close()
            thorn_app.close()
            producer.close()
        return elapsed, total

    return run


CeleryCase = Callable[[FastReceiver, Redis, argparse.Namespace], tuple[float, int]]

CELERY_CASES: dict[str, CeleryCase] = {
    "celery-1": _celery_case(1, outbox=False),
    "celery-2": _celery_case(2, outbox=False),
    "celery-outbox-1": _celery_case(1, outbox=True),
    "celery-outbox-2": _celery_case(2, outbox=True),
}
ABOUT = {
    "engine": "outbox engine, SQLite store, one process",
    "engine-memory": "outbox engine, MemoryStore (no database), one process",
    "celery-1": "Celery, no database, 1 worker process",
    "celery-2": "Celery, no database, 2 worker processes",
    "celery-outbox-1": "Celery, outbox on SQLite, 1 worker process",
    "celery-outbox-2": "Celery, outbox on SQLite, 2 worker processes",
}
#: Each Celery case's workers' CPU use, in share of one core per process.
WORKER_CPU: list[float] = []
PROCESSES = {"celery-1": 1, "celery-2": 2, "celery-outbox-1": 1, "celery-outbox-2": 2}


def main(argv: list[str] | None = None) -> int:
    from thorn.transport.client import new_event_loop

    from . import engine as engine_bench

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscribers", type=int, default=10, help="per event")
    parser.add_argument("--chunksize", type=int, default=10, help="THORN_CHUNKSIZE")
    parser.add_argument(
        "--pool",
        choices=["solo", "threads"],
        default="solo",
        help="the workers' Celery pool (solo: one task at a time)",
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="tasks at once with --pool threads"
    )
    parser.add_argument("--only", nargs="*", help=f"cases ({', '.join(ABOUT)})")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = args.only or list(ABOUT)
    unknown = sorted(set(names) - set(ABOUT))
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)}")
    rates: dict[str, list[float]] = {name: [] for name in names}
    busy: dict[str, list[float]] = {name: [] for name in names}
    worker_busy: dict[str, list[float]] = {name: [] for name in names}
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    redis = Redis()
    try:
        with FastReceiver() as receiver:
            for _ in range(args.rounds):
                for name in names:
                    cpu = receiver.cpu()
                    if name in CELERY_CASES:
                        seconds, done = CELERY_CASES[name](receiver, redis, args)
                        worker_busy[name].append(WORKER_CPU.pop())
                    else:
                        seconds, done = loop.run_until_complete(
                            engine_bench.CASES[name](receiver, args.count)
                        )
                    rates[name].append(done / seconds)
                    busy[name].append((receiver.cpu() - cpu) / seconds)
    finally:
        redis.close()
        loop.close()
    results = [
        {
            "case": name,
            "per_second": statistics.median(rates[name]),
            "per_worker_process": statistics.median(rates[name])
            / PROCESSES.get(name, 1),
            "rounds": rates[name],
            "receiver_busy": statistics.median(busy[name]),
            "worker_busy": (
                statistics.median(worker_busy[name]) if worker_busy[name] else None
            ),
            "about": ABOUT[name],
        }
        for name in names
    ]
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}; {len(BODY)}-byte JSON signed twice, to a "
        f"receiver process on 127.0.0.1; {args.subscribers} subscribers per "
        f"event, THORN_CHUNKSIZE {args.chunksize}; workers --pool={args.pool}"
        + (f" --concurrency={args.threads}" if args.pool == "threads" else "")
    )
    print(f"# median of {args.rounds} rounds of {args.count} deliveries per case")
    print(
        f"{'case':16} {'deliveries/s':>13} {'per process':>12} {'workers':>8} "
        f"{'receiver':>9}  about"
    )
    for r in results:
        workers = "" if r["worker_busy"] is None else f"{r['worker_busy']:.0%}"
        print(
            f"{r['case']:16} {r['per_second']:13,.0f} "
            f"{r['per_worker_process']:12,.0f} {workers:>8} "
            f"{r['receiver_busy']:8.0%}  {r['about']}"
        )
    print(
        "# workers: CPU use of each worker process, receiver: of the receiver, "
        "while the case ran, in share of one core"
    )
    if args.json:
        args.json.write_text(json.dumps({"cases": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
