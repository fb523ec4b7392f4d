"""The outbox in Django's database: enqueue, claim, leases, record, replay, purge.

Time is driven through the ``now`` arguments, never by sleeping. The engine
that drives the store is tested elsewhere; here one test posts a claimed
task to a real receiver with the plain client, to prove a task carries what
a post needs.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from thorn import Event, Thorn, signals
from thorn.dispatch.outbox import OutboxDispatcher
from thorn.django import store as thorn_store
from thorn.django.models import Attempt, Delivery, Message, Subscriber
from thorn.django.store import DjangoOutboxStore, as_timedelta
from thorn.engine.store import AttemptResult, DeliveryTask
from thorn.receiver import verify_request
from thorn.request import USER_AGENT, webhook_headers
from thorn.retry import RetryPolicy
from thorn.signing import Signer
from thorn.transport.client import SyncClient
from thorn.validators import ensure_protocol

pytestmark = pytest.mark.django_db

USE_POSTGRESQL = connection.vendor == "postgresql"
SECOND = datetime.timedelta(seconds=1)
DAY = datetime.timedelta(days=1)
STATIC_SECRET = "static-secret-Zq8Xv4Rt2LmW9pKd"


@pytest.fixture(autouse=True)
def outbox(settings: Any) -> None:
    settings.THORN_DISPATCHER = "outbox"
    settings.THORN_RETRY = True


@pytest.fixture
def store() -> DjangoOutboxStore:
    return DjangoOutboxStore()


def subscribe(n: int = 1, *, event: str = "order.paid", **fields: Any) -> list[Any]:
    fields.setdefault("url", "http://127.0.0.1:9/hook")
    return [Subscriber.objects.create(event=event, **fields) for _ in range(n)]


def send(event: str = "order.paid", data: Any = None, **options: Any) -> list[Any]:
    with transaction.atomic():
        requests: list[Any] = Event(event, **options).send(data or {"id": 1})
    return requests


def later(seconds: float = 1.0) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=seconds)


def result(
    task: DeliveryTask,
    outcome: str,
    *,
    at: datetime.datetime | None = None,
    status: int | None = None,
    next_at: datetime.datetime | None = None,
    excerpt: bytes = b"",
    error: str = "",
) -> AttemptResult:
    return AttemptResult(
        delivery_id=task.id,
        outcome=outcome,  # type: ignore[arg-type]
        started_at=at or timezone.now(),
        duration=0.25,
        status_code=status,
        error=error,
        response_excerpt=excerpt,
        next_attempt_at=next_at,
        subscriber_key=task.subscriber_key,
    )


@contextlib.contextmanager
def statements_run() -> Iterator[list[str]]:
    """The SQL statements run meanwhile, whichever cursor ran them (the store
    runs its own on SQLite's DB-API cursor, which Django does not see)."""
    found: list[str] = []
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        raw = connection.connection
        raw.set_trace_callback(lambda sql: found.append(sql.strip()))
        try:
            yield found
        finally:
            raw.set_trace_callback(None)
    else:
        with CaptureQueriesContext(connection) as queries:
            yield found
        # Django logs executemany() as "<n> times: <sql>": one statement
        # sent n times (psycopg pipelines them).
        found.extend(re.sub(r"^\d+ times: ", "", q["sql"].strip()) for q in queries)


# -- enqueue ---------------------------------------------------------------------------


def test_a_rolled_back_send_writes_nothing_and_sends_nothing(receiver: Any) -> None:
    subscribe(url=receiver.url("/hook"))

    class Boom(Exception):
        pass

    def send_then_fail() -> None:
        with transaction.atomic():
            requests = Event("order.paid").send({"id": 1})
            assert len(requests) == 1
            assert Delivery.objects.count() == 1  # written in the transaction...
            raise Boom

    with pytest.raises(Boom):
        send_then_fail()
    assert not Message.objects.exists()  # ...and gone with it
    assert not Delivery.objects.exists()
    assert DjangoOutboxStore().claim(owner="a", limit=10, lease=60, now=later()) == []
    assert receiver.hooks == []


def test_a_commit_writes_one_message_and_a_delivery_per_subscriber() -> None:
    subs = subscribe(3)
    requests = send(data={"id": 7, "total": "9.50"})
    (message,) = Message.objects.all()
    assert message.event == "order.paid"
    assert message.data == '{"id":7,"total":"9.50"}'
    assert bytes(message.body) == b'{"id":7,"total":"9.50"}'
    deliveries = Delivery.objects.order_by("id")
    assert [d.id for d in deliveries] == sorted(r.id for r in requests)
    assert {d.subscriber_id for d in deliveries} == {s.pk for s in subs}
    for delivery in deliveries:
        assert delivery.message_id == message.pk
        assert delivery.status == "pending"
        assert delivery.attempts == 0
        # The body is stored once, with the message.
        assert delivery.body is None
        assert delivery.payload_body == b'{"id":7,"total":"9.50"}'
        assert delivery.static_secret is None  # read from the row when claimed
        assert not delivery.static_subscriber
        # Only what Thorn does not make itself: the engine makes the rest
        # (event, delivery id, subscription, content type) for every try.
        assert dict(delivery.headers) == {"User-Agent": USER_AGENT}


@pytest.mark.parametrize("n", [1, 4, 30])
def test_enqueueing_costs_the_same_queries_for_any_number_of_subscribers(
    n: int,
) -> None:
    subscribe(n)
    send()  # the first send looks at the tables once
    with statements_run() as queries, transaction.atomic():
        Event("order.paid").send({"id": 1})
    statements = [q.split()[0] for q in queries]
    # The subscriber lookup, one insert for the message, one for the
    # deliveries (a COPY on PostgreSQL), and the transaction's own.
    insert = "COPY" if connection.vendor == "postgresql" else "INSERT"
    assert statements == ["SAVEPOINT", "SELECT", insert, insert, "RELEASE"]
    assert Delivery.objects.count() == 2 * n


def test_the_buffer_holds_requests_until_it_is_flushed(thorn_app: Thorn) -> None:
    subscribe(2)
    thorn_app.enable_buffer()
    Event("order.paid").send({"id": 1})
    Event("order.paid").send({"id": 2})
    assert not Delivery.objects.exists()
    thorn_app.flush_buffer()
    thorn_app.disable_buffer()
    assert Message.objects.count() == 2  # one per send
    assert Delivery.objects.count() == 4
    for message in Message.objects.all():
        assert message.deliveries.count() == 2


def test_the_dispatcher_waits_for_nothing(thorn_app: Thorn) -> None:
    dispatcher = thorn_app.dispatcher
    assert isinstance(dispatcher, OutboxDispatcher)
    assert dispatcher.wait_for_retries() is True
    assert dispatcher.pending_retries == 0


def test_deliveries_get_the_retry_ladder_unless_the_event_chose(
    settings: Any, thorn_app: Thorn
) -> None:
    subscribe()
    settings.THORN_RETRY_SCHEDULE = (5, 60, 600)
    (request,) = send()
    stored = RetryPolicy.from_dict(Delivery.objects.get(pk=request.id).policy)
    assert stored.schedule == (5.0, 60.0, 600.0)
    assert stored.max_retries == 3
    (request,) = send(retry_max=2, retry_delay=30)
    stored = RetryPolicy.from_dict(Delivery.objects.get(pk=request.id).policy)
    assert (stored.schedule, stored.max_retries, stored.delay) == (None, 2, 30.0)
    (request,) = send(retry=False)
    stored = RetryPolicy.from_dict(Delivery.objects.get(pk=request.id).policy)
    assert stored.retry is False
    assert stored.schedule == (5.0, 60.0, 600.0)


def test_a_send_after_a_setting_changed_gets_the_new_ladder(
    settings: Any, thorn_app: Thorn
) -> None:
    # The dispatcher keeps the policy it made for a send; a changed setting
    # must reach the next one all the same.
    subscribe()
    settings.THORN_RETRY_SCHEDULE = (5, 60)
    for _ in range(2):
        (request,) = send()
        stored = RetryPolicy.from_dict(Delivery.objects.get(pk=request.id).policy)
        assert stored.schedule == (5.0, 60.0)
    settings.THORN_RETRY_SCHEDULE = (1, 2, 3)
    (request,) = send()
    stored = RetryPolicy.from_dict(Delivery.objects.get(pk=request.id).policy)
    assert stored.schedule == (1.0, 2.0, 3.0)
    settings.THORN_RETRY_DELAY = 9
    (request,) = send()
    stored = RetryPolicy.from_dict(Delivery.objects.get(pk=request.id).policy)
    assert (stored.schedule, stored.delay) == (None, 9.0)


def test_a_static_subscribers_secret_is_copied_into_its_delivery(
    settings: Any, store: DjangoOutboxStore
) -> None:
    settings.THORN_SUBSCRIBERS = {
        "order.paid": {
            "url": "http://127.0.0.1:9/static",
            "hmac_secret": STATIC_SECRET,
            "hmac_digest": "sha512",
        }
    }
    (request,) = send()
    delivery = Delivery.objects.get()
    assert delivery.static_subscriber
    assert delivery.subscriber_id is None
    assert delivery.static_secret == STATIC_SECRET
    (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
    assert task.id == request.id
    assert (task.hmac_secret, task.hmac_digest) == (STATIC_SECRET, "sha512")
    assert task.url == "http://127.0.0.1:9/static"
    assert task.subscriber_key is None


def test_each_send_stores_its_own_extra_headers_and_user_agent(
    store: DjangoOutboxStore,
) -> None:
    subscribe(2)
    with transaction.atomic():
        plain = Event("order.paid").send({"id": 1})
        agent = Event("order.paid").send(
            {"id": 2}, headers={"User-Agent": "shop/1.0", "X-Shop": "eu"}
        )
        extra = Event("order.paid").send({"id": 3}, headers={"X-Shop": "us"})
    stored = {d.pk: d.headers for d in Delivery.objects.all()}
    for request in plain:
        assert stored[request.id] == [["User-Agent", USER_AGENT]]
    for request in agent:
        assert stored[request.id] == [["User-Agent", "shop/1.0"], ["X-Shop", "eu"]]
    for request in extra:
        assert stored[request.id] == [["User-Agent", USER_AGENT], ["X-Shop", "us"]]
    # The engine posts them as the default dispatcher would.
    for task in store.claim(owner="a", limit=10, lease=60, now=later()):
        made = dict(
            webhook_headers(
                event=task.event,
                delivery_id=task.id,
                content_type=task.content_type,
                subscription=task.subscription,
                extra=task.headers,
            )
        )
        (request,) = [r for r in plain + agent + extra if r.id == task.id]
        assert made == dict(request.default_headers)


# -- claim -----------------------------------------------------------------------------


def test_claim_returns_due_deliveries_with_what_a_post_needs(
    store: DjangoOutboxStore,
) -> None:
    (sub,) = subscribe(hmac_digest="sha1")
    before = timezone.now() - SECOND
    (request,) = send(data={"id": 3})
    assert store.claim(owner="a", limit=10, lease=60, now=before) == []
    assert store.backlog(now=before) == 0
    assert store.backlog(now=later()) == 1
    (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
    assert task.id == request.id
    assert task.message_id == Message.objects.get().pk
    assert task.event == "order.paid"
    assert task.url == sub.url
    assert task.body == b'{"id":3}'
    assert task.content_type == "application/json"
    assert task.subscription == str(sub.uuid)
    assert (task.hmac_secret, task.hmac_digest) == (sub.hmac_secret, "sha1")
    assert task.attempts == 0
    assert task.headers == (("User-Agent", USER_AGENT),)  # Thorn's own: made anew
    assert task.timeout == request.timeout
    assert task.policy == request.policy.to_dict()
    assert task.subscriber_key == sub.pk
    delivery = Delivery.objects.get()
    assert delivery.lease_owner == "a"
    assert store.backlog(now=later()) == 0


def test_claim_takes_at_most_limit_oldest_first(store: DjangoOutboxStore) -> None:
    subscribe()
    ids = [send(data={"n": n})[0].id for n in range(5)]
    now = later()
    first = store.claim(owner="a", limit=2, lease=60, now=now)
    second = store.claim(owner="b", limit=10, lease=60, now=now)
    assert [t.id for t in first] == ids[:2]
    assert [t.id for t in second] == ids[2:]
    assert store.claim(owner="c", limit=10, lease=60, now=now) == []
    assert store.claim(owner="c", limit=0, lease=60, now=now) == []


def test_a_lease_keeps_others_away_until_it_runs_out(store: DjangoOutboxStore) -> None:
    subscribe()
    (request,) = send()
    t0 = later()
    (task,) = store.claim(owner="a", limit=10, lease=60, now=t0)
    assert store.claim(owner="b", limit=10, lease=60, now=t0 + 59 * SECOND) == []
    # Engine "a" died: its lease runs out and the delivery is taken again,
    # with the same id.
    (again,) = store.claim(owner="b", limit=10, lease=60, now=t0 + 61 * SECOND)
    assert again.id == task.id == request.id
    assert Delivery.objects.get().lease_owner == "b"


def test_release_gives_a_delivery_back_at_once(store: DjangoOutboxStore) -> None:
    subscribe()
    send()
    t0 = later()
    (task,) = store.claim(owner="a", limit=10, lease=600, now=t0)
    store.release([task.id], owner="someone-else")
    assert store.claim(owner="b", limit=10, lease=60, now=later(2)) == []
    store.release([task.id], owner="a")
    (again,) = store.claim(owner="b", limit=10, lease=60, now=later(2))
    assert again.id == task.id


def test_a_rotated_secret_is_used_by_the_next_claim(store: DjangoOutboxStore) -> None:
    (sub,) = subscribe()
    send()
    sub.rotate_secret()
    sub.refresh_from_db()
    (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
    assert task.hmac_secret == sub.hmac_secret


def test_a_disabled_subscriber_is_skipped_and_resumes_when_enabled(
    store: DjangoOutboxStore,
) -> None:
    paused, other = subscribe(2)
    send()
    paused.disable("maintenance")
    (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
    assert task.subscriber_key == other.pk
    assert store.backlog(now=later()) == 0  # not due while disabled
    # A retry planned an hour out becomes due as soon as it is enabled.
    Delivery.objects.filter(subscriber=paused).update(next_attempt_at=later(3600))
    paused.enable()
    (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
    assert task.subscriber_key == paused.pk


def test_the_admin_enable_action_resumes_deliveries(
    admin_client: Client, store: DjangoOutboxStore
) -> None:
    (sub,) = subscribe()
    send()
    sub.disable("410 Gone")
    Delivery.objects.update(next_attempt_at=later(3600))
    response = admin_client.post(
        reverse("admin:thorn_subscriber_changelist"),
        {"action": "enable_subscribers", "_selected_action": [sub.pk]},
    )
    assert response.status_code == 302
    (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
    assert task.subscriber_key == sub.pk


def test_deleting_a_subscriber_cancels_its_pending_deliveries_but_keeps_the_log(
    store: DjangoOutboxStore,
) -> None:
    (sub,) = subscribe()
    (done,) = send()
    (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
    store.record([result(task, "succeeded", status=200)], owner="a", now=later())
    (waiting,) = send()
    sub.delete()
    assert Delivery.objects.get(pk=done.id).status == "succeeded"
    cancelled = Delivery.objects.get(pk=waiting.id)
    assert cancelled.status == "cancelled"
    assert cancelled.subscriber_id is None
    assert cancelled.next_attempt_at is None
    assert store.claim(owner="a", limit=10, lease=60, now=later(3600)) == []
    assert store.replay(status="all", now=later()) == 0  # nowhere to send it


def test_the_portable_claim_leases_like_the_native_one(
    store: DjangoOutboxStore,
) -> None:
    (sub,) = subscribe()
    (request,) = send()
    now = later()
    until = now + 60 * SECOND
    with transaction.atomic():
        rows = store._claim_portable("a", 10, until, now)
    (task,) = [store._task_of(row, now) for row in rows]
    assert (task.id, task.hmac_secret) == (request.id, sub.hmac_secret)
    assert task.headers == tuple(tuple(pair) for pair in Delivery.objects.get().headers)
    assert store.claim(owner="b", limit=10, lease=60, now=now) == []


@pytest.mark.skipif(not USE_POSTGRESQL, reason="concurrent engines need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_out_a_delivery_twice() -> None:
    subscribe(4)
    for n in range(50):
        send(data={"n": n})
    total = Delivery.objects.count()
    now = later()
    start = threading.Barrier(4)
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def engine(owner: str) -> None:
        mine: list[str] = []
        try:
            store = DjangoOutboxStore()
            start.wait()
            while batch := store.claim(owner=owner, limit=7, lease=60, now=now):
                mine.extend(task.id for task in batch)
        except BaseException as exc:
            errors.append(exc)
        finally:
            claimed[owner] = mine
            connections.close_all()

    threads = [threading.Thread(target=engine, args=(f"e{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    every = [pk for ids in claimed.values() for pk in ids]
    assert len(every) == len(set(every)) == total
    assert sum(1 for ids in claimed.values() if ids) >= 2  # they shared the work
    owners = dict(Delivery.objects.values_list("pk", "lease_owner"))
    for owner, ids in claimed.items():
        assert all(owners[pk] == owner for pk in ids)


# -- record ----------------------------------------------------------------------------


def test_record_stores_attempts_and_moves_deliveries_on(
    settings: Any, store: DjangoOutboxStore
) -> None:
    settings.THORN_ATTEMPT_EXCERPT_SIZE = 4
    subscribe(3)
    send()
    now = later()
    ok, retry, failed = store.claim(owner="a", limit=10, lease=60, now=now)
    next_at = now + 300 * SECOND
    store.record(
        [
            result(ok, "succeeded", status=200, excerpt=b"thanks!"),
            result(retry, "retry", status=503, next_at=next_at, error="503"),
            result(failed, "failed", error="connection refused"),
        ],
        owner="a",
        now=now,
    )
    states = {d.pk: d for d in Delivery.objects.all()}
    assert states[ok.id].status == "succeeded"
    assert states[ok.id].completed_at == now
    assert states[ok.id].next_attempt_at is None
    assert states[retry.id].status == "pending"
    assert states[retry.id].next_attempt_at == next_at
    assert states[retry.id].last_status_code == 503
    assert states[failed.id].status == "failed"
    assert states[failed.id].last_error == "connection refused"
    for delivery in states.values():
        assert delivery.attempts == 1
        assert (delivery.lease_owner, delivery.leased_until) == (None, None)
    attempt = Attempt.objects.get(delivery_id=ok.id)
    assert (attempt.number, attempt.status_code) == (1, 200)
    assert attempt.duration_ms == 250.0
    assert bytes(attempt.response_excerpt) == b"than"
    # The retry comes back at its time, as attempt number 2.
    assert store.claim(owner="a", limit=10, lease=60, now=next_at - SECOND) == []
    (task,) = store.claim(owner="a", limit=10, lease=60, now=next_at)
    assert (task.id, task.attempts) == (retry.id, 1)
    store.record([result(task, "succeeded", status=200)], owner="a", now=next_at)
    numbers = Attempt.objects.filter(delivery_id=retry.id).order_by("number")
    assert [a.number for a in numbers] == [1, 2]


@pytest.mark.parametrize("n", [2, 40, 37])
def test_recording_a_batch_costs_a_few_statements_of_a_few_texts(
    n: int, store: DjangoOutboxStore
) -> None:
    subscribe(n)
    send()
    now = later()
    tasks = store.claim(owner="a", limit=n, lease=60, now=now)
    results = [
        result(t, "succeeded" if i % 2 else "retry", status=200, next_at=now)
        for i, t in enumerate(tasks)
    ]
    with statements_run() as queries:
        store.record(results, owner="a", now=now)
    writes = [q for q in queries if not q.startswith(("SAVEPOINT", "RELEASE"))]
    # Attempts: a COPY on PostgreSQL; elsewhere multi-row INSERTs of
    # power-of-two sizes (40: 32 and 8), so that a few statement texts serve
    # every batch size and SQLite parses each once. Then deliveries (one
    # for the successes, one per power-of-two run of the rest, each with, on
    # SQLite, the count of rows changed), then subscribers: clear the
    # successes' run of failures, start the others', find those to disable.
    kinds = [" ".join(q.split()[:2]) for q in writes]
    changes = ["SELECT changes()"] if connection.vendor == "sqlite" else []
    copied = connection.vendor == "postgresql"
    inserts = ['COPY "thorn_attempt"'] if copied else ["INSERT INTO"] * n.bit_count()
    retried = (n + 1) // 2  # the rest, in power-of-two runs too
    assert kinds == [
        *inserts,
        'UPDATE "thorn_delivery"',
        *(["WITH v", *changes] * retried.bit_count()),
        'UPDATE "thorn_subscriber"',
        'UPDATE "thorn_subscriber"',
        'SELECT "thorn_subscriber"."id"',
    ], writes
    sizes = [q.count("), (") + 1 for q in writes if q.startswith("INSERT")]
    assert sorted(sizes, reverse=True) == sizes
    assert all(size & (size - 1) == 0 for size in sizes)  # powers of two
    assert sum(sizes) == (0 if copied else n)
    assert Attempt.objects.count() == n


def test_a_delivery_reported_twice_in_one_batch_gets_two_attempts(
    store: DjangoOutboxStore,
) -> None:
    subscribe(2)
    send()
    now = later()
    first, other = store.claim(owner="a", limit=10, lease=60, now=now)
    next_at = now + 60 * SECOND
    store.record(
        [
            result(first, "retry", status=500, next_at=next_at, at=now),
            result(other, "succeeded", status=200, at=now),
            result(first, "succeeded", status=200, at=now + SECOND),
        ],
        owner="a",
        now=now,
    )
    numbers = Attempt.objects.filter(delivery_id=first.id).order_by("number")
    assert [(a.number, a.status_code) for a in numbers] == [(1, 500), (2, 200)]
    delivery = Delivery.objects.get(pk=first.id)
    # The retry dropped the lease; the success counts whoever reports it.
    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert Delivery.objects.get(pk=other.id).status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_a_delivery_deleted_while_it_was_tried_is_not_logged_and_the_rest_is(
    store: DjangoOutboxStore,
) -> None:
    """The quick record inserts attempts as they are: one of a delivery
    deleted meanwhile breaks the foreign key at commit, and the record is
    made again with the statements that skip it. Nothing else is lost."""
    subscribe(3)
    send()
    now = later()
    gone, *kept = store.claim(owner="a", limit=10, lease=60, now=now)
    Delivery.objects.filter(pk=gone.id).delete()
    store.record(
        [result(t, "succeeded", status=200) for t in (gone, *kept)],
        owner="a",
        now=now,
    )
    assert not Attempt.objects.filter(delivery_id=gone.id).exists()
    for task in kept:
        delivery = Delivery.objects.get(pk=task.id)
        assert (delivery.status, delivery.logged_attempts) == ("succeeded", 1)
        assert Attempt.objects.get(delivery_id=task.id).number == 1


def test_attempts_are_numbered_on_whichever_store_recorded_the_last_one(
    store: DjangoOutboxStore,
) -> None:
    """A store numbers the attempts of what it claimed from the count it
    read; one that did not claim the delivery numbers from the log."""
    subscribe()
    send()
    now = later()
    (task,) = store.claim(owner="a", limit=10, lease=60, now=now)
    next_at = now + 60 * SECOND
    store.record(
        [result(task, "retry", status=500, next_at=next_at)], owner="a", now=now
    )
    (task,) = store.claim(owner="a", limit=10, lease=60, now=next_at)
    # Another store (another process) records this try.
    DjangoOutboxStore().record(
        [result(task, "retry", status=503, next_at=next_at + SECOND)],
        owner="a",
        now=next_at,
    )
    (task,) = store.claim(owner="a", limit=10, lease=60, now=next_at + 2 * SECOND)
    store.record([result(task, "succeeded", status=200)], owner="a", now=next_at)
    log = Attempt.objects.filter(delivery_id=task.id).order_by("number")
    assert [(a.number, a.status_code) for a in log] == [(1, 500), (2, 503), (3, 200)]
    delivery = Delivery.objects.get(pk=task.id)
    assert (delivery.attempts, delivery.logged_attempts) == (3, 3)


def test_a_try_whose_lease_ran_out_is_logged_and_the_count_read_again(
    store: DjangoOutboxStore,
) -> None:
    """Engine a's lease runs out; b claims and fails the delivery; then a's
    late failure comes in. a's try is logged, its state change refused (b
    holds it), and the count of logged tries is read from the log again."""
    subscribe()
    send()
    now = later()
    (late,) = store.claim(owner="a", limit=10, lease=1, now=now)
    other = DjangoOutboxStore()
    (task,) = other.claim(owner="b", limit=10, lease=60, now=now + 2 * SECOND)
    other.record(
        [result(task, "retry", status=500, next_at=now + 3 * SECOND)],
        owner="b",
        now=now + 2 * SECOND,
    )
    store.record(
        [result(late, "retry", status=502, next_at=now + 9 * SECOND)],
        owner="a",
        now=now + 2 * SECOND,
    )
    delivery = Delivery.objects.get(pk=task.id)
    assert delivery.next_attempt_at == now + 3 * SECOND  # b's schedule stands
    assert Attempt.objects.filter(delivery_id=task.id).count() == 2
    assert delivery.logged_attempts == 2


def test_a_batch_larger_than_a_statement_is_recorded_whole(
    monkeypatch: Any, store: DjangoOutboxStore
) -> None:
    monkeypatch.setattr(thorn_store, "RECORD_CHUNK_SIZE", 3)
    subscribe(7)
    send()
    now = later()
    tasks = store.claim(owner="a", limit=10, lease=60, now=now)
    times = [now + (i + 1) * SECOND for i in range(len(tasks))]
    store.record(
        [
            result(t, "retry", status=None, next_at=at, error=f"e{i}")
            for i, (t, at) in enumerate(zip(tasks, times, strict=True))
        ],
        owner="a",
        now=now,
    )
    states = {d.pk: d for d in Delivery.objects.all()}
    for i, (task, at) in enumerate(zip(tasks, times, strict=True)):
        delivery = states[task.id]
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert delivery.next_attempt_at == at
        assert (delivery.last_status_code, delivery.last_error) == (None, f"e{i}")
        assert delivery.lease_owner is None
    assert Attempt.objects.filter(number=1, status_code=None).count() == 7


def test_a_late_report_after_the_lease_moved_on_is_logged_but_not_applied(
    store: DjangoOutboxStore,
) -> None:
    subscribe()
    send()
    t0 = later()
    (stale,) = store.claim(owner="a", limit=10, lease=60, now=t0)
    (fresh,) = store.claim(owner="b", limit=10, lease=60, now=t0 + 61 * SECOND)
    store.record([result(stale, "failed", error="timeout")], owner="a", now=t0)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.lease_owner) == ("pending", "b")
    assert Attempt.objects.count() == 1  # the try happened, and is logged
    # A success counts whoever reports it: the receiver has the message.
    store.record([result(stale, "succeeded", status=200)], owner="a", now=t0)
    assert Delivery.objects.get().status == "succeeded"
    store.record([result(fresh, "failed", error="x")], owner="b", now=t0)
    assert Delivery.objects.get().status == "succeeded"


def test_410_gone_fails_the_delivery_and_disables_the_subscriber(
    store: DjangoOutboxStore, caplog: pytest.LogCaptureFixture
) -> None:
    (sub,) = subscribe(url="http://ada:pa55word@127.0.0.1:9/hook")
    send()
    send()
    (first,) = store.claim(owner="a", limit=1, lease=60, now=later())
    with caplog.at_level(logging.WARNING, logger="thorn.django.store"):
        store.record([result(first, "gone", status=410)], owner="a", now=later())
    sub.refresh_from_db()
    assert not sub.active
    assert sub.disabled_reason == "410 Gone from http://ada:***@127.0.0.1:9/hook"
    assert Delivery.objects.get(pk=first.id).status == "failed"
    assert str(sub.uuid) in caplog.text
    assert "pa55word" not in caplog.text
    # The other delivery waits for the subscriber to come back.
    assert store.claim(owner="a", limit=10, lease=60, now=later()) == []


def test_a_subscriber_failing_for_the_whole_period_is_disabled(
    settings: Any, store: DjangoOutboxStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings.THORN_AUTO_DISABLE_AFTER = "5d"
    (sub,) = subscribe(url="http://ada:pa55word@127.0.0.1:9/hook")
    send()
    t0 = later()

    def fail_at(now: datetime.datetime) -> None:
        (task,) = store.claim(owner="a", limit=10, lease=60, now=now)
        store.record(
            [result(task, "retry", at=now, status=500, next_at=now)],
            owner="a",
            now=now,
        )

    fail_at(t0)
    sub.refresh_from_db()
    assert sub.failing_since == t0
    fail_at(t0 + 4 * DAY)
    sub.refresh_from_db()
    assert (sub.active, sub.failing_since) == (True, t0)  # the run goes on
    with caplog.at_level(logging.WARNING, logger="thorn.django.store"):
        fail_at(t0 + 5 * DAY + SECOND)
    sub.refresh_from_db()
    assert not sub.active
    assert sub.disabled_reason == "failed without a success for 5 days"
    assert sub.failing_since is None  # after enable() the count starts afresh
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(sub.uuid) in record.getMessage()
    assert "http://ada:***@127.0.0.1:9/hook" in record.getMessage()
    assert "pa55word" not in caplog.text
    # Still pending: nothing is dropped, and it goes out once enabled.
    assert Delivery.objects.get().status == "pending"
    sub.enable()
    assert len(store.claim(owner="a", limit=10, lease=60, now=later())) == 1


def test_a_success_ends_a_run_of_failures(
    settings: Any, store: DjangoOutboxStore
) -> None:
    settings.THORN_AUTO_DISABLE_AFTER = datetime.timedelta(days=5)
    (sub,) = subscribe()
    send()
    send()
    t0 = later()
    bad, good = store.claim(owner="a", limit=10, lease=60, now=t0)
    store.record([result(bad, "retry", at=t0, next_at=t0)], owner="a", now=t0)
    sub.refresh_from_db()
    assert sub.failing_since == t0
    store.record([result(good, "succeeded", status=204)], owner="a", now=t0)
    sub.refresh_from_db()
    assert sub.failing_since is None
    # A failure six days later starts a new run instead of disabling.
    t6 = t0 + 6 * DAY
    (task,) = store.claim(owner="a", limit=10, lease=60, now=t6)
    store.record([result(task, "retry", at=t6, next_at=t6)], owner="a", now=t6)
    sub.refresh_from_db()
    assert (sub.active, sub.failing_since) == (True, t6)


def test_auto_disable_can_be_turned_off(
    settings: Any, store: DjangoOutboxStore
) -> None:
    settings.THORN_AUTO_DISABLE_AFTER = None
    (sub,) = subscribe()
    send()
    t0 = later()
    for days in (0, 30):
        now = t0 + days * DAY
        (task,) = store.claim(owner="a", limit=10, lease=60, now=now)
        store.record([result(task, "retry", at=now, next_at=now)], owner="a", now=now)
    sub.refresh_from_db()
    assert sub.active


def test_a_claimed_task_posts_to_a_real_receiver_and_verifies(
    receiver: Any, store: DjangoOutboxStore
) -> None:
    (sub,) = subscribe(url=receiver.url("/hook"), hmac_digest="sha512")
    (request,) = send(data={"order": 42})
    now = later()
    (task,) = store.claim(owner="a", limit=10, lease=60, now=now)
    # As the engine does: Thorn's own headers made from the task, the stored
    # ones (what Thorn does not make) as extras, then the signatures.
    headers = [
        *webhook_headers(
            event=task.event,
            delivery_id=task.id,
            content_type=task.content_type,
            subscription=task.subscription,
            extra=task.headers,
        ),
        *Signer()
        .headers(
            body=task.body,
            msg_id=task.id,
            timestamp=int(time.time()),
            secret=task.hmac_secret,
            digest=task.hmac_digest,
            extra_secrets=task.extra_secrets,
        )
        .items(),
    ]
    client = SyncClient()
    try:
        started = timezone.now()
        response = client.post(
            task.url,
            task.body,
            headers,
            timeout=task.timeout,
            validators=[ensure_protocol("http")],
        )
    finally:
        client.close()
    (hook,) = receiver.wait_for(1)
    assert hook.json() == {"order": 42}
    assert hook.header("hook-delivery") == hook.header("webhook-id") == request.id
    assert hook.header("content-type") == "application/json"
    assert verify_request(hook.body, hook.headers, sub.hmac_secret, digest="sha512")
    store.record(
        [
            AttemptResult(
                delivery_id=task.id,
                outcome="succeeded",
                started_at=started,
                duration=response.elapsed,
                status_code=response.status,
                response_excerpt=response.body,
                subscriber_key=task.subscriber_key,
            )
        ],
        owner="a",
        now=now,
    )
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == ("succeeded", 200)
    assert bytes(Attempt.objects.get().response_excerpt) == b"ok"


# -- replay and purge ------------------------------------------------------------------


def finish(store: DjangoOutboxStore, outcome: str, now: datetime.datetime) -> list[str]:
    """Claim everything due and record ``outcome`` for it; return the ids."""
    tasks = store.claim(owner="x", limit=1000, lease=60, now=now)
    store.record([result(t, outcome, at=now) for t in tasks], owner="x", now=now)
    return [t.id for t in tasks]


def test_replay_queues_failed_deliveries_again_with_their_ids(
    store: DjangoOutboxStore,
) -> None:
    subscribe(event="order.*")
    (paid,) = send("order.paid")
    (shipped,) = send("order.shipped")
    now = later()
    finish(store, "failed", now)
    assert store.replay(event="order.paid", now=now) == 1
    (task,) = store.claim(owner="a", limit=10, lease=60, now=now)
    assert task.id == paid.id
    assert task.attempts == 0  # the whole retry ladder again
    store.record([result(task, "succeeded", status=200)], owner="a", now=now)
    log = Attempt.objects.filter(delivery_id=paid.id).order_by("number")
    assert [(a.number, a.status_code) for a in log] == [(1, None), (2, 200)]
    assert store.replay(now=now) == 1  # the other failed one
    assert Delivery.objects.get(pk=shipped.id).status == "pending"
    assert store.replay(now=now) == 0


def test_replay_filters_by_subscriber_status_and_time(
    store: DjangoOutboxStore,
) -> None:
    one, two = subscribe(2)
    send()
    now = later()
    finish(store, "succeeded", now)
    assert store.replay(now=now) == 0  # nothing failed
    assert store.replay(status="succeeded", subscriber=one, now=now) == 1
    assert Delivery.objects.get(subscriber=one).status == "pending"
    created = Delivery.objects.get(subscriber=two).created_at
    assert store.replay(status="all", since=created + SECOND, now=now) == 0
    assert store.replay(status="all", until=created, now=now) == 0
    assert store.replay(status="all", subscriber=str(two.uuid), now=now) == 1
    with pytest.raises(ValueError, match="status must be one of"):
        store.replay(status="pending", now=now)


def test_the_replay_command_queues_and_says_how_many(
    store: DjangoOutboxStore,
) -> None:
    (sub,) = subscribe()
    send()
    send("order.paid")
    finish(store, "failed", later())
    out = io.StringIO()
    call_command("thorn_replay", "--dry-run", stdout=out)
    assert "2 deliveries would be queued again" in out.getvalue()
    assert Delivery.objects.filter(status="failed").count() == 2
    out = io.StringIO()
    call_command(
        "thorn_replay",
        "--subscriber",
        str(sub.uuid),
        "--event",
        "order.paid",
        "--since",
        (timezone.now() - DAY).date().isoformat(),
        "--until",
        later(60).isoformat(),
        stdout=out,
    )
    assert "Queued 2 deliveries again." in out.getvalue()
    assert Delivery.objects.filter(status="pending").count() == 2
    out = io.StringIO()
    call_command("thorn_replay", "--status", "all", stdout=out)
    assert "nothing was queued" in out.getvalue()
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("thorn_replay", "--since", "yesterday")


def test_purge_deletes_old_finished_messages_only(store: DjangoOutboxStore) -> None:
    subscribe(2)
    done = send()
    failed = send()
    waiting = send()
    recent = send()
    now = later()
    old = now - 40 * DAY
    Message.objects.update(created_at=old)
    Delivery.objects.update(created_at=old)
    for requests, outcome in ((done, "succeeded"), (failed, "failed")):
        for request in requests:
            (task,) = store.claim(owner="x", limit=1, lease=60, now=now)
            assert task.id == request.id
            store.record([result(task, outcome, at=old)], owner="x", now=old)
    # One of the two deliveries of this message succeeds, one waits.
    task = store.claim(owner="x", limit=2, lease=60, now=now)[0]
    assert task.id in {r.id for r in waiting}
    store.record([result(task, "succeeded", at=old)], owner="x", now=old)
    Message.objects.filter(pk=recent[0].message_id).update(created_at=now)
    assert store.purgeable(older_than=30 * DAY, now=now).count() == 1
    assert store.purge(older_than=30 * DAY, now=now) == 1
    assert not Message.objects.filter(pk=done[0].message_id).exists()
    assert not Delivery.objects.filter(pk__in=[r.id for r in done]).exists()
    assert not Attempt.objects.filter(delivery_id__in=[r.id for r in done]).exists()
    for kept in (failed, waiting, recent):
        assert Message.objects.filter(pk=kept[0].message_id).exists()
    assert Delivery.objects.count() == 6
    assert Attempt.objects.count() == 3


def test_the_purge_command_uses_the_retention_setting(settings: Any) -> None:
    store = DjangoOutboxStore()
    subscribe()
    send()
    now = later()
    finish(store, "succeeded", now)
    Message.objects.update(created_at=now - 3 * DAY)
    Delivery.objects.update(completed_at=now - 3 * DAY)
    out = io.StringIO()
    call_command("thorn_purge", stdout=out)
    assert "nothing was deleted" in out.getvalue()
    settings.THORN_RETENTION = "2d"
    out = io.StringIO()
    call_command("thorn_purge", "--dry-run", stdout=out)
    assert "1 messages would be deleted" in out.getvalue()
    call_command("thorn_purge", stdout=out)
    assert "Deleted 1 messages" in out.getvalue()
    assert not Message.objects.exists()
    with pytest.raises(CommandError, match="--older-than"):
        call_command("thorn_purge", "--older-than", "soon")
    call_command("thorn_purge", "--older-than", "12h", stdout=out)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30d", 2592000), ("12h", 43200), ("90m", 5400), ("45", 45), ("2w", 1209600)],
)
def test_durations_are_read_from_text_numbers_and_timedeltas(
    value: str, seconds: int
) -> None:
    assert as_timedelta(value).total_seconds() == seconds
    assert as_timedelta(seconds) == datetime.timedelta(seconds=seconds)
    assert as_timedelta(DAY) is DAY
    with pytest.raises(ValueError, match="THORN_RETENTION"):
        as_timedelta("a month", setting="THORN_RETENTION")


# -- admin -----------------------------------------------------------------------------


@pytest.fixture
def finished(settings: Any) -> dict[str, Any]:
    """A stored and a static subscriber's deliveries, one failed attempt each."""
    settings.THORN_SUBSCRIBERS = {
        "order.paid": {
            "url": "http://bob:s3cr3tpw@127.0.0.1:9/static",
            "hmac_secret": STATIC_SECRET,
        }
    }
    (sub,) = subscribe(url="http://ada:pa55word@127.0.0.1:9/hook")
    with transaction.atomic():
        Event("order.paid").send(
            {"card": "body-only-text"}, headers={"Authorization": "Bearer tok3n-XyZ"}
        )
    store = DjangoOutboxStore()
    now = later()
    tasks = store.claim(owner="x", limit=10, lease=60, now=now)
    store.record(
        [result(t, "failed", status=500, excerpt=b"went wrong") for t in tasks],
        owner="x",
        now=now,
    )
    return {"subscriber": sub, "deliveries": list(Delivery.objects.all())}


def _no_secrets(text: str, sub: Subscriber) -> None:
    for secret in (STATIC_SECRET, sub.hmac_secret, "pa55word", "s3cr3tpw", "tok3n"):
        assert secret not in text
        assert escape(secret) not in text


def test_outbox_admin_pages_show_no_secret(
    admin_client: Client, finished: dict[str, Any]
) -> None:
    sub = finished["subscriber"]
    delivery = finished["deliveries"][0]
    attempt = Attempt.objects.first()
    assert attempt is not None
    pages = {
        "admin:thorn_delivery_changelist": (),
        "admin:thorn_delivery_change": (delivery.pk,),
        "admin:thorn_message_changelist": (),
        "admin:thorn_message_change": (delivery.message_id,),
        "admin:thorn_attempt_changelist": (),
        "admin:thorn_attempt_change": (attempt.pk,),
    }
    for name, args in pages.items():
        response = admin_client.get(reverse(name, args=args))
        assert response.status_code == 200, name
        _no_secrets(response.content.decode(), sub)
    # Stored: only the headers Thorn does not make; shown: all a try sends
    # but its signatures, as the engine makes them, the extras' values hidden.
    assert delivery.headers == [
        ["User-Agent", USER_AGENT],
        ["Authorization", "Bearer tok3n-XyZ"],
    ]
    page = admin_client.get(
        reverse("admin:thorn_delivery_change", args=(delivery.pk,))
    ).content.decode()
    for shown in (
        "Hook-Event: order.paid",
        f"Hook-Delivery: {delivery.pk}",
        "Content-Type: application/json",
        "Authorization: ••••",
    ):
        assert shown in page
    listing = admin_client.get(reverse("admin:thorn_delivery_changelist")).content
    assert b"body-only-text" not in listing
    assert b"http://ada:***@127.0.0.1:9/hook" in listing
    for query in ("?status__exact=failed", "?event=order.paid", f"?q={delivery.pk}"):
        response = admin_client.get(reverse("admin:thorn_delivery_changelist") + query)
        assert response.status_code == 200
        assert delivery.pk in response.content.decode()
    response = admin_client.get(
        reverse("admin:thorn_delivery_changelist")
        + f"?message__id__exact={delivery.message_id}"
    )
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2


def test_the_resend_action_queues_deliveries_again(
    admin_client: Client, finished: dict[str, Any]
) -> None:
    ids = [d.pk for d in finished["deliveries"]]
    response = admin_client.post(
        reverse("admin:thorn_delivery_changelist"),
        {"action": "resend", "_selected_action": ids},
        follow=True,
    )
    assert response.status_code == 200
    assert "Queued 2 deliveries again" in response.content.decode()
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    assert set(Delivery.objects.values_list("pk", flat=True)) == set(ids)


# -- signals ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_message_queued_names_the_message_and_its_deliveries() -> None:
    heard: list[tuple[Any, Any]] = []

    def on_queued(sender: Any, **kwargs: Any) -> None:
        heard.append((sender, sorted(kwargs["deliveries"])))

    def send_and_roll_back() -> None:
        with transaction.atomic():
            Event("order.paid").send({"id": 2})
            raise RuntimeError("rolled back")

    subscribe(2)
    signals.message_queued.connect(on_queued)
    try:
        with transaction.atomic():
            requests = Event("order.paid").send({"id": 1})
            assert heard == []  # not before the commit
        with pytest.raises(RuntimeError):
            send_and_roll_back()
    finally:
        signals.message_queued.disconnect(on_queued)
    assert heard == [(Message.objects.get().pk, sorted(r.id for r in requests))]


def test_disabling_and_enabling_send_signals(
    store: DjangoOutboxStore, django_capture_on_commit_callbacks: Any
) -> None:
    heard: list[tuple[str, Any, Any]] = []

    def on_disabled(sender: Any, **kwargs: Any) -> None:
        heard.append(("disabled", sender.pk, kwargs["reason"]))

    def on_enabled(sender: Any, **kwargs: Any) -> None:
        heard.append(("enabled", sender.pk, None))

    (sub,) = subscribe()
    send()
    signals.subscriber_disabled.connect(on_disabled)
    signals.subscriber_enabled.connect(on_enabled)
    try:
        (task,) = store.claim(owner="a", limit=10, lease=60, now=later())
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            store.record([result(task, "gone", status=410)], owner="a", now=later())
            assert heard == []  # announced when the record commits
        assert len(callbacks) == 1
        sub.enable()
        sub.disable("maintenance")
    finally:
        signals.subscriber_disabled.disconnect(on_disabled)
        signals.subscriber_enabled.disconnect(on_enabled)
    assert heard == [
        ("disabled", sub.pk, "410 Gone from http://127.0.0.1:9/hook"),
        ("enabled", sub.pk, None),
        ("disabled", sub.pk, "maintenance"),
    ]


def test_a_delivery_keeps_its_own_body_only_when_it_differs(receiver: Any) -> None:
    """Subscribers of one message with another content type get a body of
    their own; the rest share the message's. Each posts its own bytes."""
    json_sub, form_sub = subscribe(1, url=receiver.url("/json")) + subscribe(
        1, url=receiver.url("/form"), content_type="application/x-www-form-urlencoded"
    )
    send(data={"id": 7, "name": "a b"})
    (message,) = Message.objects.all()
    shared = Delivery.objects.get(subscriber=json_sub)
    own = Delivery.objects.get(subscriber=form_sub)
    assert shared.body is None
    assert bytes(own.body) == b"id=7&name=a+b"
    assert bytes(message.body) == shared.payload_body
    tasks = DjangoOutboxStore().claim(owner="a", limit=10, lease=60, now=later())
    bodies = {task.url: task.body for task in tasks}
    assert bodies == {
        receiver.url("/json"): b'{"id":7,"name":"a b"}',
        receiver.url("/form"): b"id=7&name=a+b",
    }
