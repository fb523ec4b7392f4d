"""``manage.py serve``: start-up, probes, and deliveries beside app requests.

    python -m benchmarks.serve [--subscribers 100] [--events 50] [--requests 200]
        [--only "serve" "serve --store-process"] [--no-app-requests]

Runs the example blog (``example/``) on a temporary SQLite file with the
``outbox`` dispatcher, a subscriber set of ``--subscribers`` endpoints on a
uvloop receiver in its own process, and ``--events`` events sent before the
server starts (so ``--subscribers`` x ``--events`` deliveries are waiting).
Then it starts ``manage.py serve`` and measures:

* how long until ``/startup`` answers 200 (the process start included);
* how long the engine inside ``serve`` takes to deliver the backlog, and
  so its rate;
* the latency of the application (``GET /accounts/login/``, a Django view
  with a template, requested back to back) while the engine delivers, and
  again when it is idle (``--no-app-requests``: none while it delivers, to
  see the engine's rate alone);
* the latency of ``/ready`` and ``/metrics`` on the probe port.

Both ways of running serve are measured, one after the other in one run:
as is, and with ``--store-process`` (the engine's database work in a child
process, off the app's interpreter lock).

Requests are made one after another from this process with ``http.client``
(keep-alive); the figures are medians and 95th percentiles.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .engine import FastReceiver

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example"

_SEED = """
from django.db import transaction
from thorn import Event
from thorn.django.models import Subscriber

url, subscribers, events = {url!r}, {subscribers}, {events}
Subscriber.objects.bulk_create(
    Subscriber(event="article.created", url=url) for _ in range(subscribers)
)
with transaction.atomic():
    for n in range(events):
        Event("article.created").send({{"n": n, "text": "x" * 900}})
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def _count(db: Path, status: str) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        row = conn.execute(
            "SELECT count(*) FROM thorn_delivery WHERE status = ?", (status,)
        ).fetchone()
        return int(row[0])


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status, time.perf_counter() - start


def _timed(port: int, path: str, count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return [_get(conn, path)[1] for _ in range(count)]
    finally:
        conn.close()


def _ms(samples: list[float]) -> str:
    if not samples:
        return "-"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


def _run(args: argparse.Namespace, *extra: str) -> dict[str, object]:
    """One ``serve`` on a fresh backlog; ``extra``: more options for serve."""
    folder = Path(tempfile.mkdtemp(prefix="thorn-serve-bench-"))
    db = folder / "blog.sqlite3"
    env = {
        **os.environ,
        "BLOG_DATABASE": str(db),
        "BLOG_DISPATCHER": "outbox",
        "BLOG_DEBUG": "1",
    }
    total = args.subscribers * args.events
    with FastReceiver() as receiver:
        _manage(env, "migrate", "--noinput")
        seed = _SEED.format(
            url=receiver.url("/serve"),
            subscribers=args.subscribers,
            events=args.events,
        )
        _manage(env, "shell", "-c", seed)
        if _count(db, "pending") != total:
            raise RuntimeError("the backlog was not written")
        port = _free_port()
        probe = _free_port()
        started = time.perf_counter()
        server = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLE / "manage.py"),
                "serve",
                "--port",
                str(port),
                "--probe-port",
                str(probe),
                "--req-queue-len",
                str(total + 1),
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    status = _get(
                        http.client.HTTPConnection("127.0.0.1", probe, timeout=2),
                        "/startup",
                    )[0]
                except OSError:
                    status = 0
                if status == 200:
                    break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("serve did not start")
                time.sleep(0.02)
            startup = time.perf_counter() - started
            busy: list[float] = []
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while _count(db, "succeeded") < total:
                if time.monotonic() > deadline + 600:
                    raise RuntimeError("the backlog was not delivered")
                if args.no_app_requests:
                    time.sleep(0.02)
                else:
                    busy.append(_get(conn, "/accounts/login/")[1])
            delivered = time.perf_counter() - started - startup
            conn.close()
            idle = _timed(port, "/accounts/login/", args.requests)
            ready = _timed(probe, "/ready", args.requests)
            metrics = _timed(probe, "/metrics", args.requests)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    return {
        "startup": startup,
        "delivered": delivered,
        "rate": total / delivered,
        "busy": busy,
        "idle": idle,
        "ready": ready,
        "metrics": metrics,
    }


#: The ways serve is run, side by side: its options, and what they mean.
MODES = {
    "serve": ((), "engine and app in one process"),
    "serve --store-process": (
        ("--store-process",),
        "the engine's database work in a process of its own",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--only", nargs="*", choices=list(MODES), help="modes (default: all)"
    )
    parser.add_argument(
        "--no-app-requests",
        action="store_true",
        help="no app requests while the backlog is delivered (the engine alone)",
    )
    args = parser.parse_args(argv)
    total = args.subscribers * args.events
    print(f"# manage.py serve, example blog on SQLite; {os.cpu_count()} cores")
    print(
        f"# backlog of {total:,} deliveries ({args.subscribers} subscribers x "
        f"{args.events} events), app view GET /accounts/login/"
    )
    for name in args.only or list(MODES):
        extra, about = MODES[name]
        r = _run(args, *extra)
        busy, idle = r["busy"], r["idle"]
        assert isinstance(busy, list)
        assert isinstance(idle, list)
        print(f"## {name}: {about}")
        print(f"start-up until /startup answers 200: {r['startup']:.2f} s")
        print(
            f"backlog delivered in {r['delivered']:.2f} s after start-up: "
            f"{r['rate']:,.0f}/s"
        )
        print(f"app view while delivering ({len(busy)}): {_ms(busy)}")
        print(f"app view idle ({len(idle)}): {_ms(idle)}")
        print(f"probe /ready: {_ms(r['ready'])}")  # type: ignore[arg-type]
        print(f"probe /metrics: {_ms(r['metrics'])}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
