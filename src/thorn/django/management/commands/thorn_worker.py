"""``manage.py thorn_worker``: run the delivery engine alone, on the outbox."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ....engine.core import DeliveryEngine
from ....engine.tuning import GC_THRESHOLD, tune_gc
from ....transport.client import new_event_loop
from ...store import WorkerOutboxStore
from ...worker import engine_store

__all__ = [
    "Command",
    "WorkerOutboxStore",
    "add_engine_arguments",
    "engine_options",
    "non_negative_int",
]

logger = logging.getLogger("thorn.worker")


def whole_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number, at least ``minimum``."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return whole


#: An option's whole number, at least 1 (argparse's error otherwise).
positive_int = whole_at_least(1)
#: An option's whole number, 0 or more.
non_negative_int = whole_at_least(0)


def positive_float(text: str) -> float:
    """An option's number, more than 0 (argparse's error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def add_engine_arguments(
    parser: Any,
    *,
    whole: Callable[[str], int] = positive_int,
    number: Callable[[str], float] = positive_float,
) -> None:
    """Add the delivery engine's options to ``parser`` (a parser or a group):
    ``--batch``, ``--concurrency``, ``--per-host``, ``--lease``,
    ``--poll-interval`` and ``--owner``, read with ``whole`` and ``number``;
    ``--store-process`` and ``--gc-threshold``. ``--drain-timeout`` is each
    command's own."""
    parser.add_argument(
        "--batch", type=whole, default=500, help="Deliveries per claim (500)."
    )
    parser.add_argument(
        "--concurrency",
        type=whole,
        default=256,
        help="Delivery requests in flight at once, in all (256).",
    )
    parser.add_argument(
        "--per-host",
        type=whole,
        default=64,
        help="Delivery requests in flight at once to one host (64).",
    )
    parser.add_argument(
        "--lease",
        type=number,
        default=300.0,
        help="Seconds a claim holds a delivery (300); keep it well above "
        "timeout x batch / per-host.",
    )
    parser.add_argument(
        "--poll-interval",
        type=number,
        default=0.5,
        help="Seconds between claims when nothing is due (0.5).",
    )
    parser.add_argument(
        "--owner", default=None, help="Lease owner name (default: host:pid:random)."
    )
    parser.add_argument(
        "--store-process",
        action="store_true",
        help="Do the database work in a process of its own: the engine's "
        "process then only posts (faster where a core is free).",
    )
    parser.add_argument(
        "--gc-threshold",
        type=non_negative_int,
        default=GC_THRESHOLD,
        help="Once started, freeze the start-up's objects and collect the young "
        f"generation every this many allocations ({GC_THRESHOLD}; Python's is "
        "700); 0 leaves Python's garbage collector as it is.",
    )


def engine_options(options: dict[str, Any]) -> dict[str, Any]:
    """The :class:`DeliveryEngine` keyword arguments the command's options
    give (those of :func:`add_engine_arguments`, and ``--drain-timeout``)."""
    names = ("owner", "batch", "concurrency", "per_host", "lease", "poll_interval")
    return {name: options[name] for name in (*names, "drain_timeout")}


class Command(BaseCommand):
    help = (
        "Deliver the outbox's webhooks: claim due deliveries, post them, record "
        "every try and schedule retries, until SIGTERM or SIGINT (which drain "
        "requests in flight and give the rest back)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_engine_arguments(parser)
        parser.add_argument(
            "--drain-timeout",
            type=float,
            default=10.0,
            help="On SIGTERM/SIGINT, seconds to wait for requests in flight (10).",
        )
        parser.add_argument("--database", default=None, help="Database alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        # The engine's tries send the delivery signals, once recorded.
        store = engine_store(
            options["database"],
            process=options["store_process"],
            gc_threshold=options["gc_threshold"],
        )
        engine = DeliveryEngine(store, **engine_options(options))
        tune_gc(options["gc_threshold"])  # set up: what exists now stays
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(engine, options))
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(self, engine: DeliveryEngine, options: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        got: list[str] = []

        def on_signal(name: str) -> None:
            if not got:
                logger.info("thorn_worker: %s: draining, then stopping", name)
            got.append(name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        started = time.monotonic()
        self.stdout.write(
            f"thorn_worker {engine.owner}: batch {engine.batch}, concurrency "
            f"{engine.concurrency}, {engine.per_host} per host, lease "
            f"{engine.lease:g}s, gc threshold {gc.get_threshold()[0]}"
        )
        self.stdout.flush()
        try:
            await engine.run(stop)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"thorn_worker {engine.owner}: stopped after {elapsed:.1f}s; "
            f"{engine.delivered} delivered, {engine.retried} to retry "
            f"({engine.skipped} held by open circuits), {engine.failed} failed"
        )
