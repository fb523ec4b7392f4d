"""The Celery dispatcher with the outbox: Django's tables stay the truth.

The first tests run in this process on the test database, with a real Redis.
The others start real ``celery worker`` processes (``tests/celeryapp.py``)
on a database file they share with a sending process and the sweeper
(``manage.py thorn_sweep``): a SQLite file, or a database of its own on the
test PostgreSQL server in the ``THORN_TEST_DB=postgresql`` run. Every load
here is bounded in count and in time, and stops by itself.
"""

from __future__ import annotations

import collections
import datetime
import io
import logging
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from celeryapp import Worker, make_celery
from redis_server import RedisServer, redis_server_fixture  # noqa: F401 (fixture)
from thorn import Event, buffer_events
from thorn.django.celery_store import CeleryOutboxStore
from thorn.django.models import Delivery, Subscriber
from thorn.engine.store import AttemptResult
from thorn.listener import Hook, ListenerThread, Reply
from thorn.request import Request, new_id
from thorn.subscribers import Subscriber as StaticSubscriber
from thorn.tasks import publish, sweep_outbox

TESTS = Path(__file__).parents[1]
SECRET = "celery-outbox-secret-Wm4Hq9Tz2Kc7"
USE_POSTGRESQL = connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def celery_dispatcher(settings: Any) -> None:
    settings.THORN_DISPATCHER = "celery"
    settings.THORN_RETRY = True


@pytest.fixture
def celery_app(redis_server: RedisServer) -> Iterator[Any]:
    """The publishing side's Celery app, on the test's Redis, made current."""
    from celery import _state

    previous = _state.get_current_app()
    celery = make_celery(redis_server.url)
    celery.set_current()
    celery.set_default()
    yield celery
    celery.close()
    previous.set_current()
    previous.set_default()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- in this process: what send() writes and publishes ------------------------------


@pytest.mark.django_db(transaction=True)
def test_send_writes_in_the_transaction_and_publishes_ids_when_it_commits(
    redis_server: RedisServer, celery_app: Any
) -> None:
    for i in range(3):
        Subscriber.objects.create(
            event="order.paid", url=f"http://127.0.0.1:9/{i}", hmac_secret=SECRET
        )
    with transaction.atomic():
        Event("order.paid").send({"id": 1})
        assert Delivery.objects.count() == 3
        assert redis_server.queue() == []  # nothing before the commit
    (message,) = redis_server.queue()
    assert message["task"] == "thorn.tasks.dispatch_requests"
    assert sorted(message["args"][0]) == sorted(
        Delivery.objects.values_list("id", flat=True)
    )
    raw = b"".join(redis_server.command("LRANGE", "celery", 0, -1))
    assert SECRET.encode() not in raw  # only ids travel: secrets stay here

    def send_then_fail() -> None:
        with transaction.atomic():
            Event("order.paid").send({"id": 2})
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        send_then_fail()
    assert Delivery.objects.count() == 3
    assert len(redis_server.queue()) == 1  # a rolled-back send publishes nothing


@pytest.mark.django_db(transaction=True)
def test_buffered_events_are_published_in_chunks_of_chunksize_events(
    redis_server: RedisServer, celery_app: Any
) -> None:
    Subscriber.objects.bulk_create(
        Subscriber(event="load.test", url=f"http://127.0.0.{i % 3 + 1}:9/{i}")
        for i in range(10)
    )
    with transaction.atomic(), buffer_events():
        for n in range(100):
            Event("load.test").send({"n": n})
    messages = redis_server.queue()
    assert len(messages) == 10  # 100 events, THORN_CHUNKSIZE = 10
    for message in messages:
        ids = message["args"][0]
        assert len(ids) == 100
        deliveries = Delivery.objects.filter(pk__in=ids)
        assert deliveries.values("message").distinct().count() == 10
        urls = [deliveries.get(pk=pk).url for pk in ids]
        hosts = [url.split("//")[1].split(":")[0] for url in urls]
        assert hosts == sorted(hosts)  # by origin, so keep-alive helps


@pytest.mark.django_db(transaction=True)
def test_a_failed_publish_leaves_the_deliveries_to_the_sweeper(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    from celery import _state

    from redis_server import free_port

    Subscriber.objects.create(event="order.paid", url="http://127.0.0.1:9/x")
    previous = _state.get_current_app()
    dead = make_celery(
        f"redis://127.0.0.1:{free_port()}/0",
        broker_connection_timeout=0.5,
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0},
    )
    dead.set_current()
    try:
        with caplog.at_level(logging.WARNING, logger="thorn"):
            Event("order.paid").send({"id": 1})  # commits: autocommit
    finally:
        dead.close()
        previous.set_current()
    (delivery,) = Delivery.objects.all()
    assert delivery.status == "pending"
    assert "could not publish 1 committed deliveries" in caplog.text
    live = make_celery(redis_server.url)
    live.set_current()
    try:
        assert sweep_outbox(grace=0) == (1, 1)
    finally:
        live.close()
        previous.set_current()
    (message,) = redis_server.queue()
    assert message["args"][0] == [delivery.id]


def _enqueue(count: int, **fields: Any) -> list[str]:
    fields.setdefault("hmac_secret", SECRET)
    sub = StaticSubscriber(event="a.b", url="http://127.0.0.1:9/x", **fields)
    requests = [
        Request("a.b", {"n": n}, None, sub, recipient_validators=())
        for n in range(count)
    ]
    for request in requests:
        request.message_id = new_id()  # type: ignore[attr-defined]
    CeleryOutboxStore().enqueue(requests)
    return [request.id for request in requests]


def _succeeded(delivery_id: str, now: datetime.datetime) -> AttemptResult:
    return AttemptResult(delivery_id, "succeeded", now, 0.01, 200)


@pytest.mark.django_db
def test_a_worker_claims_only_the_named_deliveries_that_are_due_and_free() -> None:
    store = CeleryOutboxStore()
    ids = _enqueue(6)
    now = timezone.now()
    first = store.claim_ids([*ids[:3], new_id()], owner="a", lease=60, now=now)
    assert sorted(task.id for task in first) == sorted(ids[:3])
    assert {task.hmac_secret for task in first} == {SECRET}
    # Held by a live lease: nobody else gets them; when it runs out, they do.
    assert store.claim_ids(ids[:3], owner="b", lease=60, now=now) == []
    later = now + datetime.timedelta(seconds=61)
    again = store.claim_ids(ids[:3], owner="b", lease=60, now=later)
    assert len(again) == 3
    store.record([_succeeded(ids[0], later)], owner="b", now=later)
    after = later + datetime.timedelta(seconds=61)
    assert ids[0] not in {
        t.id for t in store.claim_ids(ids, owner="c", lease=1, now=after)
    }
    # A retry scheduled for later is left to its own task (a few seconds'
    # difference between clocks is tolerated).
    Delivery.objects.filter(pk=ids[5]).update(
        next_attempt_at=after + datetime.timedelta(seconds=100)
    )
    too_soon = after + datetime.timedelta(seconds=90)
    assert store.claim_ids([ids[5]], owner="d", lease=1, now=too_soon) == []
    nearly = after + datetime.timedelta(seconds=99)
    assert len(store.claim_ids([ids[5]], owner="d", lease=1, now=nearly)) == 1


@pytest.mark.django_db
def test_a_disabled_subscribers_deliveries_are_not_claimed() -> None:
    sub = Subscriber.objects.create(event="a.b", url="http://127.0.0.1:9/x")
    request = Request("a.b", {}, None, sub, recipient_validators=())
    store = CeleryOutboxStore()
    store.enqueue([request])
    sub.active = False
    sub.save()
    now = timezone.now()
    assert store.claim_ids([request.id], owner="a", lease=5, now=now) == []
    sub.active = True
    sub.save()
    (task,) = store.claim_ids([request.id], owner="a", lease=5, now=now)
    assert task.subscriber_key == sub.pk


@pytest.mark.django_db
def test_the_sweeper_publishes_what_nobody_claimed_after_the_grace_only(
    redis_server: RedisServer, celery_app: Any
) -> None:
    store = CeleryOutboxStore()
    ids = _enqueue(5)
    now = timezone.now()
    Delivery.objects.filter(pk__in=ids[:4]).update(
        next_attempt_at=now - datetime.timedelta(seconds=120)
    )
    Delivery.objects.filter(pk=ids[4]).update(
        next_attempt_at=now - datetime.timedelta(seconds=10)
    )
    # A worker holds two of the old ones: their lease is live.
    held = store.claim_ids(ids[:2], owner="w", lease=300, now=now)
    assert len(held) == 2
    out = io.StringIO()
    call_command("thorn_sweep", "--grace=60", "--dry-run", stdout=out)
    assert out.getvalue().startswith("2 deliveries have waited")
    assert redis_server.queue() == []
    assert sweep_outbox(grace=60, now=now) == (2, 1)
    (message,) = redis_server.queue()
    assert sorted(message["args"][0]) == sorted(ids[2:4])
    # Made due "now": swept again only after another grace period.
    assert sweep_outbox(grace=60, now=now) == (0, 0)
    assert sweep_outbox(grace=60, now=now + datetime.timedelta(seconds=61)) == (
        3,
        1,
    )
    out = io.StringIO()
    call_command("thorn_sweep", "--grace=1h", stdout=out)
    assert out.getvalue().startswith("Nothing to publish")


@pytest.mark.django_db
def test_thorn_sweep_refuses_bad_options(settings: Any) -> None:
    with pytest.raises(CommandError, match="grace must be a timedelta"):
        call_command("thorn_sweep", "--grace=soon")
    settings.THORN_CELERY_SWEEP_GRACE = -5
    with pytest.raises(CommandError, match="SWEEP_GRACE must not be negative"):
        call_command("thorn_sweep")
    with pytest.raises(CommandError, match="--limit must be 1 or more"):
        call_command("thorn_sweep", "--limit=0")
    settings.THORN_CELERY_OUTBOX = False
    with pytest.raises(CommandError, match="works on the outbox"):
        call_command("thorn_sweep")


# -- real workers on a shared database -----------------------------------------------


class Project:
    """A settings module on a database the test, the workers, the sender and
    the sweeper share (a SQLite file; PostgreSQL in the PostgreSQL run)."""

    def __init__(self, folder: Path, redis: RedisServer) -> None:
        self.folder = folder
        self.redis = redis
        self.workers: list[Worker] = []
        self.pg: dict[str, Any] | None = None
        if USE_POSTGRESQL:
            self.pg = {
                "host": os.environ["THORN_TEST_PG_HOST"],
                "port": int(os.environ["THORN_TEST_PG_PORT"]),
                "user": os.environ["THORN_TEST_PG_USER"],
                "dbname": f"thorn_celery_{secrets.token_hex(4)}",
            }
            with self._pg_admin() as admin:
                admin.execute(f'CREATE DATABASE "{self.pg["dbname"]}"')

    def _pg_admin(self) -> Any:
        import psycopg

        assert self.pg is not None
        params = {**self.pg, "dbname": "postgres"}
        return psycopg.connect(**params, autocommit=True)

    def configure(self, **values: Any) -> None:
        """Write ``celerysettings.py`` with ``values`` and migrate."""
        if self.pg is not None:
            database = {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": self.pg["host"],
                "PORT": str(self.pg["port"]),
                "USER": self.pg["user"],
                "NAME": self.pg["dbname"],
                "PASSWORD": "",
            }
        else:
            database = {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(self.folder / "outbox.sqlite3"),
                "OPTIONS": {
                    "init_command": "PRAGMA journal_mode=WAL",
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 30,
                },
            }
        lines = [
            "from testproject.settings import *  # noqa: F403",
            f"DATABASES = {{'default': {database!r}}}",
            "THORN_DISPATCHER = 'celery'",
            "THORN_RETRY = True",
        ]
        lines += [f"{name} = {value!r}" for name, value in values.items()]
        # As a project's __init__.py does: load the Celery app, so that the
        # sender and the sweeper publish to the test's Redis.
        lines.append("import celeryapp  # noqa: E402, F401")
        (self.folder / "celerysettings.py").write_text("\n".join(lines) + "\n")
        self.django("migrate", "--verbosity=0")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("THORN_TEST_DB", "THORN_TEST_WORKER", "THORN_TEST_SETTINGS"):
            env.pop(name, None)
        env.update(
            PYTHONPATH=os.pathsep.join([str(self.folder), str(TESTS)]),
            DJANGO_SETTINGS_MODULE="celerysettings",
            THORN_TEST_REDIS_URL=self.redis.url,
            **extra,
        )
        return env

    def django(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=self.env(),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        return output

    def send(self, code: str) -> str:
        """Run ``code`` in a Django shell that publishes to the test's Redis."""
        return self.django("shell", "-c", textwrap.dedent(code))

    def sweep(self, grace: str = "1") -> str:
        return self.django("thorn_sweep", f"--grace={grace}")

    def worker(self, **env: str) -> Worker:
        name = f"w{len(self.workers)}"
        worker = Worker.start(
            self.env(**env), self.folder / f"{name}.log", cwd=self.folder, name=name
        )
        self.workers.append(worker)
        return worker

    def column(self, sql: str) -> list[Any]:
        if self.pg is not None:
            import psycopg

            with psycopg.connect(**self.pg) as db:
                rows = db.execute(sql).fetchall()
        else:
            with sqlite3.connect(self.folder / "outbox.sqlite3", timeout=30) as db:
                rows = db.execute(sql).fetchall()
            db.close()
        return [str(row[0]).strip() for row in rows]

    def scalar(self, sql: str) -> Any:
        if self.pg is not None:
            import psycopg

            with psycopg.connect(**self.pg) as db:
                row = db.execute(sql).fetchone()
        else:
            with sqlite3.connect(self.folder / "outbox.sqlite3", timeout=30) as db:
                row = db.execute(sql).fetchone()
            db.close()
        assert row is not None
        return row[0]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.pg is not None:
            with self._pg_admin() as admin:
                admin.execute(
                    f'DROP DATABASE IF EXISTS "{self.pg["dbname"]}" WITH (FORCE)'
                )


@pytest.fixture
def project(tmp_path: Path, redis_server: RedisServer) -> Iterator[Project]:
    made = Project(tmp_path, redis_server)
    try:
        yield made
    finally:
        made.close()


def _subscribe_and_send(url: str, subscribers: int, events: int) -> str:
    """Sender code: ``subscribers`` stored subscribers, ``events`` events
    buffered in one transaction, and one rolled-back send."""
    return f"""
        from django.db import transaction
        from thorn import Event, buffer_events
        from thorn.django.models import Subscriber
        Subscriber.objects.bulk_create(
            Subscriber(event="load.test", url="{url}" % i, hmac_secret={SECRET!r})
            for i in range({subscribers})
        )
        with transaction.atomic(), buffer_events():
            for n in range({events}):
                Event("load.test").send({{"n": n}})
        try:
            with transaction.atomic():
                Event("load.test").send({{"n": -1}})
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        """


def _send_event_task(event: str) -> str:
    """Sender code: the manual's send_event task (subscribers found in the worker)."""
    return f"""
        from thorn.tasks import send_event
        send_event.delay({event!r}, {{"n": "task"}}, None, 3.0)
        """


def _counting_receiver(
    delay: float = 0.0,
) -> tuple[ListenerThread, collections.Counter[str], list[Hook]]:
    seen: collections.Counter[str] = collections.Counter()
    unsigned: list[Hook] = []
    lock = threading.Lock()

    def count(hook: Hook) -> Reply:
        with lock:
            seen[hook.header("hook-delivery") or ""] += 1
            if not hook.verified or hook.header("webhook-id") != hook.header(
                "hook-delivery"
            ):
                unsigned.append(hook)
        return Reply(delay=delay)

    return ListenerThread(record=False, handler=count, secret=SECRET), seen, unsigned


def _left(project: Project) -> int:
    left: int = project.scalar(
        "SELECT count(*) FROM thorn_delivery WHERE status != 'succeeded'"
    )
    return left


@pytest.mark.slow
def test_workers_deliver_the_outbox_in_chunks_and_record_every_attempt(
    project: Project, redis_server: RedisServer
) -> None:
    project.configure()
    receiver, seen, unsigned = _counting_receiver()
    with receiver:
        project.send(_subscribe_and_send(receiver.url("/load/%d"), 10, 100))
        assert len(redis_server.queue()) == 10  # the rolled-back send: none
        assert redis_server.pushes() == 10
        worker = project.worker()
        wait_until(lambda: len(seen) >= 1000, 90, "1000 deliveries")
        # The manual's send_event: the worker finds the ten subscribers,
        # writes their deliveries to the outbox and posts them itself.
        project.send(_send_event_task("load.test"))
        wait_until(lambda: len(seen) >= 1010, 60, "the task's deliveries")
        wait_until(lambda: _left(project) == 0, 60, "every attempt recorded")
    assert len(seen) == 1010
    assert sum(seen.values()) == 1010
    assert unsigned == []
    assert project.scalar("SELECT count(*) FROM thorn_attempt") == 1010
    assert project.scalar("SELECT count(*) FROM thorn_delivery") == 1010
    assert redis_server.pushes() == 11
    assert SECRET not in worker.log()


@pytest.mark.slow
def test_a_failed_delivery_is_retried_on_the_ladder_by_a_celery_countdown(
    project: Project, redis_server: RedisServer
) -> None:
    project.configure(
        THORN_RETRY_SCHEDULE=(1, 3600),
        THORN_RETRY_JITTER=False,
        THORN_CELERY_COUNTDOWN_MAX=600,
    )
    with ListenerThread(secret=SECRET) as receiver:
        receiver.route("/flaky", [Reply(status=503), Reply(status=200)])
        receiver.route("/down", Reply(status=500))
        project.send(
            f"""
            from thorn import Event
            from thorn.django.models import Subscriber
            for path in ("/flaky", "/down"):
                Subscriber.objects.create(
                    event="order.paid",
                    url="{receiver.url("")}" + path,
                    hmac_secret={SECRET!r},
                )
            Event("order.paid").send({{"id": 1}})
            """
        )
        project.worker()
        receiver.wait_for(4, timeout=60)
        wait_until(
            lambda: project.scalar("SELECT count(*) FROM thorn_attempt") == 4,
            30,
            "the retries to be recorded",
        )
        hooks = list(receiver.hooks)
    by_path = collections.defaultdict(list)
    for hook in hooks:
        by_path[hook.path].append(hook)
    assert len(by_path["/flaky"]) == 2
    assert len(by_path["/down"]) == 2
    for tries in by_path.values():
        assert len({h.header("hook-delivery") for h in tries}) == 1
    assert project.scalar(
        "SELECT status FROM thorn_delivery WHERE url LIKE '%/flaky'"
    ) == ("succeeded")
    assert project.scalar(
        "SELECT status FROM thorn_delivery WHERE url LIKE '%/down'"
    ) == ("pending")
    # The send, and one retry message for both (one origin, 1 s); the third
    # try of /down waits an hour, more than THORN_CELERY_COUNTDOWN_MAX: that
    # one is the sweeper's, not a message held by a worker for an hour.
    assert redis_server.pushes() == 2
    gap = by_path["/flaky"][1].received_at - by_path["/flaky"][0].received_at
    assert gap >= 0.9  # the countdown, not at once


@pytest.mark.slow
def test_a_worker_killed_mid_chunk_loses_nothing_after_the_sweeper(
    project: Project,
) -> None:
    project.configure(
        THORN_CELERY_LEASE=3.0,
        THORN_MAX_CONNECTIONS_PER_HOST=4,
    )
    receiver, seen, unsigned = _counting_receiver(delay=0.02)
    with receiver:
        project.send(_subscribe_and_send(receiver.url("/k/%d"), 20, 50))
        first = project.worker()
        wait_until(lambda: len(seen) >= 100, 60, "the first chunk to start")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(20)
        at_kill = len(seen)
        project.worker()
        deadline = time.monotonic() + 100
        while len(seen) < 1000:
            assert time.monotonic() < deadline, f"{len(seen)} of 1000 arrived"
            project.sweep(grace="1")  # what the dead worker held, or had taken
            time.sleep(0.5)
        wait_until(lambda: _left(project) == 0, 60, "every attempt recorded")
    assert at_kill < 1000, "killed too late to test anything"
    assert len(seen) == 1000  # every delivery arrived at least once
    assert unsigned == []
    duplicates = sum(seen.values()) - 1000
    attempts = project.scalar("SELECT count(*) FROM thorn_attempt")
    # Every post but those the killed worker never recorded is in the log.
    assert attempts <= sum(seen.values())
    print(f"\n{at_kill} arrived before SIGKILL; {duplicates} duplicates")


@pytest.mark.slow
def test_two_workers_handle_each_delivery_none_lost_and_duplicates_counted(
    project: Project, redis_server: RedisServer, celery_app: Any
) -> None:
    project.configure()
    receiver, seen, unsigned = _counting_receiver(delay=0.001)
    with receiver:
        workers = [project.worker(THORN_TEST_PREFETCH="1") for _ in range(2)]
        for worker in workers:
            worker.wait_ready()
        project.send(_subscribe_and_send(receiver.url("/two/%d"), 20, 100))
        # Publish every delivery a second time, in other chunks, as an
        # impatient sweeper would: copies of messages, while the first ones
        # run, must not become copies of posts.
        ids = project.column("SELECT id FROM thorn_delivery")
        for start in range(0, len(ids), 50):
            publish(ids[start : start + 50])
        wait_until(lambda: len(seen) >= 2000, 90, "2000 deliveries")
        wait_until(lambda: _left(project) == 0, 60, "every attempt recorded")
        wait_until(redis_server.drained, 60, "the queue to drain")

        def handled_all() -> bool:
            return sum(w.log().count("succeeded in") for w in workers) >= 50

        wait_until(handled_all, 30, "the workers to log every task")
    handled = [w.log().count("succeeded in") for w in workers]
    assert all(handled), f"one worker did all the work: {handled}"
    assert sum(handled) == 10 + 40  # the sends' messages, and the copies
    assert len(seen) == 2000  # none lost
    assert unsigned == []
    copies = sum(seen.values())
    attempts = project.scalar("SELECT count(*) FROM thorn_attempt")
    assert copies == attempts  # every post is recorded, each once
    duplicates = copies - 2000
    assert duplicates == 0  # a delivery is claimed by one worker at a time
    print(
        f"\nmessages per worker: {handled} (40 of them copies); "
        f"duplicate posts: {duplicates}"
    )


@pytest.mark.slow
def test_a_broker_crash_during_a_run_loses_nothing(
    project: Project, redis_server: RedisServer
) -> None:
    # A Redis without persistence: the crash loses every queued message.
    project.configure(THORN_MAX_CONNECTIONS_PER_HOST=4)
    receiver, seen, unsigned = _counting_receiver(delay=0.01)
    with receiver:
        project.send(_subscribe_and_send(receiver.url("/b/%d"), 10, 100))
        project.worker()
        wait_until(lambda: len(seen) >= 200, 60, "the run to start")
        redis_server.restart(kill=True)
        at_crash = len(seen)
        deadline = time.monotonic() + 100
        while len(seen) < 1000:
            assert time.monotonic() < deadline, f"{len(seen)} of 1000 arrived"
            project.sweep(grace="1")
            time.sleep(0.5)
        wait_until(lambda: _left(project) == 0, 60, "every attempt recorded")
    assert at_crash < 1000, "crashed too late to test anything"
    assert len(seen) == 1000
    assert unsigned == []
    print(f"\n{at_crash} arrived before the crash; {sum(seen.values()) - 1000} dups")
