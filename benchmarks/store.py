"""The outbox store's calls alone: enqueue, claim and record, per delivery.

    python -m benchmarks.store [--count 20000] [--batch 1000]
        [--postgresql postgresql://user@127.0.0.1:5432/postgres]

Without the engine or any HTTP: ``DjangoOutboxStore.enqueue`` of
``--count`` deliveries (1 KB JSON, one static subscriber, in batches of
``--batch``), then ``claim`` and ``record`` (every try a success) of
``--batch`` at a time until none is left. Wall time and this process's CPU
time per delivery are printed for each call. SQLite is a temporary file in
WAL mode with full sync (commits are durable), as in ``benchmarks.engine``;
with ``--postgresql`` the same runs on a throw-away database made on that
server (and dropped afterwards). These are the figures behind the store's
part of the engine's cost (docs/outbox.md, "Speed").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .subscribers import add_postgresql_argument, configure_django, drop_databases


class Clock:
    """Wall and CPU seconds spent in one kind of call."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def measure(alias: str, count: int, batch: int) -> dict[str, Clock]:
    """Enqueue, claim and record ``count`` deliveries on ``alias``."""
    from django.core.management import call_command
    from django.db import connections, transaction
    from django.utils import timezone

    from thorn.django.store import DjangoOutboxStore
    from thorn.engine.store import AttemptResult

    from .engine import _requests

    if alias == "default":
        call_command("migrate", database=alias, verbosity=0)
    else:
        connections[alias].creation.create_test_db(
            verbosity=0, autoclobber=True, serialize=False
        )
    store = DjangoOutboxStore(using=alias)
    clocks = {name: Clock() for name in ("enqueue", "claim", "record")}
    requests = _requests("http://127.0.0.1:9/store", count)
    for start in range(0, count, batch):
        chunk = requests[start : start + batch]
        with clocks["enqueue"], transaction.atomic(using=alias):
            store.enqueue(chunk)
    done = 0
    while True:
        now = timezone.now()
        with clocks["claim"]:
            tasks = store.claim(owner="bench", limit=batch, lease=300, now=now)
        if not tasks:
            break
        results = [
            AttemptResult(
                t.id, "succeeded", now, 0.001, 200, "", b"ok", None, t.subscriber_key
            )
            for t in tasks
        ]
        with clocks["record"]:
            store.record(results, owner="bench", now=timezone.now())
        done += len(tasks)
    if done != count:
        raise RuntimeError(f"claimed {done} of {count} deliveries")
    return clocks


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.store", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    add_postgresql_argument(parser)
    parser.add_argument(
        "--python-gc",
        action="store_true",
        help="leave Python's garbage collector as it is (by default it is tuned "
        "as thorn_worker tunes it: thorn.engine.tuning.tune_gc)",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch < 1:
        parser.error("--count and --batch must be 1 or more")
    with tempfile.TemporaryDirectory(prefix="thorn-bench-") as tmp:
        aliases = configure_django(
            Path(tmp) / "store.sqlite3",
            args.postgresql,
            test_name="thorn_benchmark_store",
            # As in benchmarks.engine: WAL, and commits that are durable.
            sqlite_options={
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
                "transaction_mode": "IMMEDIATE",
            },
            THORN_DISPATCHER="outbox",
            LOGGING_CONFIG=None,
        )
        from django.db import connections

        if not args.python_gc:
            from thorn.engine.tuning import tune_gc

            tune_gc()  # as thorn_worker does once set up
        names = {a: connections[a].settings_dict["NAME"] for a in aliases}
        print(
            f"# {args.count:,} deliveries of 1 KB JSON, {args.batch} per call; "
            "µs per delivery, wall (this process's CPU); "
            + ("Python's gc" if args.python_gc else "gc tuned as thorn_worker does")
        )
        print(f"{'database':<12} {'enqueue':>16} {'claim':>16} {'record':>16}")
        try:
            for alias in aliases:
                clocks = measure(alias, args.count, args.batch)
                per = 1e6 / args.count
                cells = [
                    f"{c.wall * per:.1f} ({c.cpu * per:.1f})" for c in clocks.values()
                ]
                vendor = connections[alias].vendor
                print(f"{vendor:<12} " + " ".join(f"{c:>16}" for c in cells))
        finally:
            drop_databases(aliases, names)
    return 0


if __name__ == "__main__":
    sys.exit(run())
