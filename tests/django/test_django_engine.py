"""The delivery engine on the Django outbox: end to end, killed workers, two engines.

Every load test here is bounded in count and in time, and stops by itself.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction

from engine_helpers import run_engine_once
from thorn import Event
from thorn.django.management.commands.thorn_worker import WorkerOutboxStore
from thorn.django.models import Attempt, Delivery, Subscriber
from thorn.engine.core import DeliveryEngine
from thorn.listener import Hook, ListenerThread, Reply
from thorn.receiver import verify_request
from thorn.transport.client import new_event_loop

TESTS = Path(__file__).parents[1]
SECRET = "engine-secret-Hq3Lm8Vx1Tz6Rw2Y"
USE_POSTGRESQL = connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def outbox(settings: Any) -> None:
    settings.THORN_DISPATCHER = "outbox"
    settings.THORN_RETRY = True


@pytest.mark.django_db(transaction=True)
def test_the_outbox_delivers_what_was_committed_and_nothing_rolled_back(
    receiver: Any,
) -> None:
    for i in range(3):
        Subscriber.objects.create(
            event="order.paid", url=receiver.url(f"/paid/{i}"), hmac_secret=SECRET
        )

    def send_then_fail() -> None:
        with transaction.atomic():
            Event("order.paid").send({"id": "rolled-back"})
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        send_then_fail()
    assert Delivery.objects.count() == 0
    with transaction.atomic():
        Event("order.paid").send({"id": "kept"})
    assert receiver.hooks == []  # the dispatcher posts nothing itself
    assert run_engine_once() == 3
    hooks = receiver.hooks
    assert len(hooks) == 3
    for hook in hooks:
        assert hook.json()["id"] == "kept"
        assert verify_request(hook.body, hook.headers, SECRET)
    ids = {h.header("hook-delivery") for h in hooks}
    assert ids == set(Delivery.objects.values_list("id", flat=True))
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
    attempts = Attempt.objects.all()
    assert len(attempts) == 3
    assert {a.status_code for a in attempts} == {200}
    assert run_engine_once() == 0


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_retried_on_the_ladder_with_the_same_id(
    receiver: Any, settings: Any
) -> None:
    settings.THORN_RETRY_SCHEDULE = (0, 0, 3600)
    settings.THORN_RETRY_JITTER = False
    receiver.route("/flaky", [Reply(status=500), Reply(action="reset"), Reply()])
    Subscriber.objects.create(event="order.paid", url=receiver.url("/flaky"))
    with transaction.atomic():
        Event("order.paid").send({"id": 1})
    for _ in range(3):
        assert run_engine_once() == 1
    (delivery,) = Delivery.objects.all()
    assert delivery.status == "succeeded"
    assert delivery.attempts == 3
    assert {h.header("hook-delivery") for h in receiver.hooks} == {delivery.id}
    errors = list(Attempt.objects.order_by("number").values_list("error", flat=True))
    assert errors[0].startswith("500")
    assert "connection" in errors[1]
    assert errors[2] == ""


# -- a worker killed in the middle ---------------------------------------------------


def _worker_env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(TESTS)])
    env["DJANGO_SETTINGS_MODULE"] = "killsettings"
    env.pop("THORN_TEST_DB", None)
    return env


def _django(folder: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "django", *args],
        env=_worker_env(folder),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def _check(proc: subprocess.Popen[str], timeout: float) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _fill(
    folder: Path, receiver: ListenerThread, *, subscribers: int, events: int
) -> int:
    """``subscribers`` x ``events`` deliveries to ``receiver``, in one commit
    of a ``manage.py shell`` on ``folder``'s settings; return how many."""
    fill = _django(
        folder,
        "shell",
        "-c",
        textwrap.dedent(
            f"""
            from django.db import transaction
            from thorn import Event
            from thorn.django.models import Subscriber
            Subscriber.objects.bulk_create(
                Subscriber(event="load.test", url="{receiver.url("/s/")}%d" % i)
                for i in range({subscribers})
            )
            with transaction.atomic():
                for n in range({events}):
                    Event("load.test").send({{"n": n}})
            """
        ),
    )
    _check(fill, 120)
    return subscribers * events


def _wait_for_arrivals(
    worker: subprocess.Popen[str], seen: Any, count: int, *, timeout: float
) -> None:
    """Wait until ``count`` distinct deliveries arrived, the worker alive."""
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        assert worker.poll() is None, worker.communicate()[0]
        assert time.monotonic() < deadline, f"the worker is stuck at {len(seen)}"
        time.sleep(0.005)


@pytest.fixture
def file_database(tmp_path: Path) -> Path:
    """A settings module on a SQLite file that subprocesses share; migrated."""
    (tmp_path / "killsettings.py").write_text(
        textwrap.dedent(
            f"""
            from testproject.settings import *  # noqa: F403

            DATABASES = {{
                "default": {{
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": {str(tmp_path / "outbox.sqlite3")!r},
                    "OPTIONS": {{
                        "init_command": "PRAGMA journal_mode=WAL",
                        "transaction_mode": "IMMEDIATE",
                        "timeout": 30,
                    }},
                }}
            }}
            THORN_DISPATCHER = "outbox"
            THORN_RETRY = True
            """
        )
    )
    _check(_django(tmp_path, "migrate", "--verbosity=0"), 120)
    return tmp_path


@pytest.mark.slow
@pytest.mark.skipif(USE_POSTGRESQL, reason="runs on a SQLite file in both runs")
def test_a_worker_killed_mid_run_loses_nothing_after_a_restart(
    file_database: Path,
) -> None:
    folder = file_database
    seen: collections.Counter[str] = collections.Counter()
    mismatched: list[Hook] = []
    lock = threading.Lock()

    def count(hook: Hook) -> None:
        delivery_id = hook.header("hook-delivery") or ""
        if hook.header("webhook-id") != delivery_id:
            mismatched.append(hook)
        with lock:
            seen[delivery_id] += 1

    with ListenerThread(record=False, on_hook=count) as receiver:
        total = _fill(folder, receiver, subscribers=100, events=100)
        first = _django(
            folder,
            "thorn_worker",
            "--lease=3",
            "--batch=200",
            "--concurrency=32",
            "--poll-interval=0.05",
        )
        try:
            _wait_for_arrivals(first, seen, 1500, timeout=60)
            first.send_signal(signal.SIGKILL)
        finally:
            if first.poll() is None:
                first.kill()
            first.communicate(timeout=10)
        at_kill = len(seen)
        assert at_kill < total, "killed too late to test anything"
        second = _django(folder, "thorn_worker", "--poll-interval=0.05")
        try:
            deadline = time.monotonic() + 120
            while len(seen) < total:
                assert second.poll() is None, second.communicate()[0]
                assert time.monotonic() < deadline, f"{len(seen)} of {total} arrived"
                time.sleep(0.05)
            # Let it record the last answers, then stop it the polite way.
            with sqlite3.connect(folder / "outbox.sqlite3", timeout=30) as db:
                while True:
                    (left,) = db.execute(
                        "SELECT count(*) FROM thorn_delivery "
                        "WHERE status != 'succeeded'"
                    ).fetchone()
                    if not left:
                        break
                    assert time.monotonic() < deadline, f"{left} not recorded"
                    time.sleep(0.05)
                (attempts,) = db.execute(
                    "SELECT count(*) FROM thorn_attempt"
                ).fetchone()
            second.send_signal(signal.SIGTERM)
            out = _check(second, 30)
        finally:
            if second.poll() is None:
                second.kill()
                second.communicate(timeout=10)
    assert "stopped after" in out
    assert "gc threshold 20000" in out  # tuned as the option says by default
    assert len(seen) == total  # every delivery arrived at least once
    assert mismatched == []  # and every copy carries its delivery id
    duplicates = sum(seen.values()) - total
    # Copies come only from the killed worker's posts it never recorded.
    assert duplicates == sum(n - 1 for n in seen.values())
    assert attempts >= total
    print(f"\n{at_kill} arrived before SIGKILL; {duplicates} duplicates in all")


# -- two engines at once -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not USE_POSTGRESQL, reason="needs PostgreSQL's row locks")
@pytest.mark.django_db(transaction=True)
def test_two_engines_never_post_the_same_delivery_at_once() -> None:
    delay = 0.02
    arrivals: dict[str, list[float]] = collections.defaultdict(list)
    lock = threading.Lock()

    def note(hook: Hook) -> Reply:
        with lock:
            arrivals[hook.header("hook-delivery") or ""].append(time.monotonic())
        return Reply(delay=delay)

    with ListenerThread(record=False, handler=note) as receiver:
        Subscriber.objects.bulk_create(
            Subscriber(event="race.test", url=receiver.url(f"/r/{i}"))
            for i in range(20)
        )
        with transaction.atomic():
            for n in range(100):
                Event("race.test").send({"n": n})
        total = Delivery.objects.count()
        assert total == 2000
        engines = [
            DeliveryEngine(
                WorkerOutboxStore(), batch=50, concurrency=32, poll_interval=0.02
            )
            for _ in range(2)
        ]
        stops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        ready = threading.Barrier(3)
        errors: list[BaseException] = []

        def serve(engine: DeliveryEngine) -> None:
            loop = new_event_loop()
            asyncio.set_event_loop(loop)
            stop = asyncio.Event()
            stops.append((loop, stop))
            ready.wait()
            try:
                loop.run_until_complete(engine.run(stop))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                loop.close()
                connections.close_all()

        threads = [threading.Thread(target=serve, args=(e,)) for e in engines]
        for thread in threads:
            thread.start()
        ready.wait()
        deadline = time.monotonic() + 60
        try:
            while Delivery.objects.filter(status="succeeded").count() < total:
                assert time.monotonic() < deadline, "the engines did not finish"
                time.sleep(0.1)
        finally:
            for loop, stop in stops:
                loop.call_soon_threadsafe(stop.set)
            for thread in threads:
                thread.join(30)
    assert errors == []
    assert len(arrivals) == total
    assert all(e.delivered > 0 for e in engines), "one engine did all the work"
    overlapping = [
        delivery_id
        for delivery_id, times in arrivals.items()
        if any(b - a < delay for a, b in itertools.pairwise(times))
    ]
    assert overlapping == []
    assert sum(len(t) for t in arrivals.values()) == total  # no copies at all


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch", "0", "must be at least 1, not 0"),
        ("--concurrency", "many", "'many' is not a whole number"),
        ("--lease", "-5", "must be more than 0, not -5"),
        ("--gc-threshold", "-1", "must be at least 0, not -1"),
    ],
)
def test_the_worker_refuses_bad_engine_options_before_starting(
    option: str, value: str, message: str
) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("thorn_worker", option, value)


# -- the store in a process of its own -----------------------------------------------


def _store_children(worker: int) -> list[int]:
    """The worker's store processes (its spawned children, not the tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == worker and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(USE_POSTGRESQL, reason="runs on a SQLite file in both runs")
def test_a_worker_whose_store_process_is_killed_loses_nothing(
    file_database: Path,
) -> None:
    folder = file_database
    seen: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def count(hook: Hook) -> None:
        with lock:
            seen[hook.header("hook-delivery") or ""] += 1

    with ListenerThread(record=False, on_hook=count) as receiver:
        total = _fill(folder, receiver, subscribers=20, events=100)
        worker = _django(
            folder,
            "thorn_worker",
            "--store-process",
            "--gc-threshold=0",
            "--lease=2",
            "--batch=50",
            "--concurrency=16",
            "--poll-interval=0.05",
        )
        try:
            _wait_for_arrivals(worker, seen, 300, timeout=60)
            (first,) = _store_children(worker.pid)
            os.kill(first, signal.SIGKILL)
            at_kill = len(seen)
            deadline = time.monotonic() + 90
            with sqlite3.connect(folder / "outbox.sqlite3", timeout=30) as db:
                while True:
                    (left,) = db.execute(
                        "SELECT count(*) FROM thorn_delivery "
                        "WHERE status != 'succeeded'"
                    ).fetchone()
                    if not left and len(seen) == total:
                        break
                    assert worker.poll() is None, worker.communicate()[0]
                    assert time.monotonic() < deadline, f"{left} not delivered"
                    time.sleep(0.05)
                (attempts,) = db.execute(
                    "SELECT count(*) FROM thorn_attempt"
                ).fetchone()
            (second,) = _store_children(worker.pid)
            worker.send_signal(signal.SIGTERM)
            out = _check(worker, 30)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=10)
    assert at_kill < total, "killed too late to test anything"
    assert second != first  # a new store process took over
    assert "stopped after" in out
    assert f"gc threshold {gc.get_threshold()[0]}" in out  # 0: Python's, as is
    assert len(seen) == total
    assert attempts >= total
    assert "the store's process died" in out  # and the worker said so
    print(f"\n{at_kill} arrived before the store was killed; {attempts} attempts")


def test_the_store_process_factory_tunes_its_process_when_asked() -> None:
    from thorn.django.worker import worker_store

    before = gc.get_threshold()
    try:
        worker_store(None)
        assert gc.get_threshold() == before  # 0: left as it is
        worker_store(None, 4321)
        assert gc.get_threshold()[0] == 4321
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
