"""The outbox in Django's database: enqueue, claim, record, replay and purge."""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, Exists, OuterRef, Q, Value, When
from django.utils import timezone

from .. import signals
from ..engine.store import AttemptResult, DeliveryTask
from ..request import RESERVED_HEADERS, new_id, webhook_headers
from ..utils.json import dumps
from .models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Message,
    Subscriber,
    previous_secrets,
    redact_url,
)

if TYPE_CHECKING:
    from ..request import Request

__all__ = ["DjangoOutboxStore", "WorkerOutboxStore", "as_timedelta"]

logger = logging.getLogger(__name__)

PENDING = DeliveryStatus.PENDING.value
SUCCEEDED = DeliveryStatus.SUCCEEDED.value
FAILED = DeliveryStatus.FAILED.value

#: What ``replay(status=...)`` accepts, and the states each one selects.
REPLAYABLE = {
    "failed": (FAILED,),
    "succeeded": (SUCCEEDED,),
    "all": (FAILED, SUCCEEDED),
}
#: The longest error text kept on a delivery or an attempt.
MAX_ERROR_LENGTH = 2000
#: The length of delivery and message ids (UUIDs as text).
ID_LENGTH = 36
#: Rows deleted or replayed per statement by ``purge`` and ``replay``.
CHUNK_SIZE = 500

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def as_timedelta(value: Any, *, setting: str = "duration") -> datetime.timedelta:
    """A duration from a timedelta, seconds, or text such as ``"30d"``, ``"12h"``.

    Units: ``s``, ``m``, ``h``, ``d``, ``w`` (none: seconds).
    """
    if isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            number, unit = match.groups()
            return datetime.timedelta(
                seconds=float(number) * _UNIT_SECONDS[unit.lower()]
            )
    raise ValueError(
        f"{setting} must be a timedelta, a number of seconds, or text such as "
        f"'30d', '12h', '15m' (got {value!r})"
    )


# -- SQL ------------------------------------------------------------------------------

# The columns a claim returns, in DeliveryTask order, then the count of
# logged tries and the subscriber's key (last: the SQLite claim reads it so).
# Every claim adds the subscriber's current secret, digest, URL, previous
# secret and its end, and the message's body (_CURRENT_COLUMNS).
_TASK_COLUMNS = (
    "id, message_id, event, url, body, content_type, subscription, "
    "static_secret, static_extra_secrets, hmac_digest, attempts, headers, "
    "timeout, policy, logged_attempts, subscriber_id"
)

# The same through the ORM (other databases).
_TASK_FIELDS = (
    *(c.strip() for c in _TASK_COLUMNS.split(",")),
    "subscriber__hmac_secret",
    "subscriber__hmac_digest",
    "subscriber__url",
    "subscriber__previous_secret",
    "subscriber__previous_secret_until",
    "message__body",
)

# Due: pending, next_attempt_at passed (a claim moves it to the end of the
# lease, so leased rows are not due until the lease runs out), and the
# subscriber is static or a stored one that is active.
_DUE = """
    d.status = %s AND d.next_attempt_at <= %s
    AND (d.static_subscriber OR EXISTS (
        SELECT 1 FROM {subscriber} s WHERE s.id = d.subscriber_id AND s.active
    ))
"""

# PostgreSQL: lock the due rows {pick} selects (the oldest, for the engine's
# claim), skipping rows another engine has locked this instant, lease them,
# and return them with their subscriber's current secret, in one statement.
# A CTE with FOR UPDATE is never inlined.
_CLAIM_POSTGRESQL = """
WITH due AS MATERIALIZED (
    SELECT d.id FROM {delivery} d
    WHERE {pick}
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE {delivery} AS t
    SET lease_owner = %s, leased_until = %s, next_attempt_at = %s, updated_at = %s
    FROM due WHERE t.id = due.id
    RETURNING {returning}
)
SELECT c.*, s.hmac_secret, s.hmac_digest, s.url, s.previous_secret,
    s.previous_secret_until, m.body
FROM claimed c LEFT JOIN {subscriber} s ON s.id = c.subscriber_id
LEFT JOIN {message} m ON c.body IS NULL AND m.id = c.message_id
"""

# PostgreSQL plans the claim on statistics that an outbox table, filled and
# emptied by the thousand, rarely has: it then takes a bitmap scan of every
# pending row and a sort, O(backlog) per claim. Without bitmap scans it reads
# the due index in order and stops at the limit. JIT compiling costs more
# than these short statements take. Transaction-local (set_config(..., true)).
# The engine's pick: the oldest due rows ({due}: _DUE).
_OLDEST_DUE = """{due}
    ORDER BY d.next_attempt_at
    LIMIT %s"""

_PLAN_CLAIM_POSTGRESQL = (
    "SELECT set_config('enable_bitmapscan', 'off', true), "
    "set_config('jit', 'off', true)"
)

# SQLite serialises writers: in the claim's write transaction nobody else
# can pick the same rows (_LOCK_SQLITE takes the lock first). The claim
# reads the due rows as ONE JSON value, then leases them with one UPDATE.
# Why: Python's sqlite3 lets go of the GIL around every step of a
# statement, one per row read, and each time takes it back only when the
# event loop's thread gives it up (up to the switch interval, 5 ms, if that
# thread is busy): 1,000 rows read one by one beside a busy event loop took
# seconds. One row: one step. hex() because JSON holds no blobs (NULL: the
# message's body). {pick} is the condition on d (the delivery) and s (its
# subscriber, if stored), with an ORDER BY and LIMIT if any.
_PICK_SQLITE = """
SELECT json_group_array(json_array(
    id, message_id, event, url,
    CASE WHEN body IS NULL THEN NULL ELSE hex(body) END,
    content_type, subscription, static_secret, static_extra_secrets,
    hmac_digest, attempts, headers, timeout, policy, logged_attempts,
    subscriber_id, rid))
FROM (
    SELECT d.id, d.message_id, d.event, d.url, d.body, d.content_type,
        d.subscription, d.static_secret, d.static_extra_secrets,
        d.hmac_digest, d.attempts, d.headers, d.timeout, d.policy,
        d.logged_attempts, d.subscriber_id, d.rowid AS rid
    FROM {delivery} d LEFT JOIN {subscriber} s ON s.id = d.subscriber_id
    WHERE {pick}
)
"""

# The engine's pick: the oldest due rows. The status is written out (not a
# parameter) so that SQLite uses the partial index of pending rows.
_OLDEST_DUE_SQLITE = """
    d.status = 'pending' AND d.next_attempt_at <= ?
    AND (d.static_subscriber OR s.active)
    ORDER BY d.next_attempt_at LIMIT ?"""

# A write that writes nothing: SQLite's write lock, at once.
_LOCK_SQLITE = "UPDATE {delivery} SET lease_owner = lease_owner WHERE 0"

# The rows picked, by their rowids (in the pick's transaction, so still
# theirs), as one JSON array: one parameter, so one statement text,
# prepared once; and no lookup in the primary key's index.
_LEASE_SQLITE = """
UPDATE {delivery}
SET lease_owner = ?, leased_until = ?, next_attempt_at = ?, updated_at = ?
WHERE rowid IN (SELECT value FROM json_each(?))
"""

# The batch's subscribers (current secret, digest, URL, previous secret) and
# message bodies, one JSON value each (as above).
_SUBSCRIBERS_SQLITE = """
SELECT json_group_array(json_array(
    id, hmac_secret, hmac_digest, url, previous_secret, previous_secret_until))
FROM {subscriber} WHERE id IN (SELECT value FROM json_each(?))
"""
_BODIES_SQLITE = """
SELECT json_group_array(json_array(
    id, CASE WHEN body IS NULL THEN NULL ELSE hex(body) END))
FROM {message} WHERE id IN (SELECT value FROM json_each(?))
"""

# Attempts are numbered on from the delivery's last one (a replay resets the
# delivery's count of tries, not the log), in the same statement, for many
# deliveries at once (each one at most once per statement). Nothing is logged
# for a delivery deleted meanwhile. {rows} is "(%s, ...), ..." per attempt.
_INSERT_ATTEMPTS = """
WITH v (delivery_id, started_at, duration_ms, status_code, error,
        response_excerpt) AS (VALUES {rows})
INSERT INTO {attempt}
    (delivery_id, number, started_at, duration_ms, status_code, error,
     response_excerpt)
SELECT d.id,
    (SELECT COALESCE(MAX(a.number), 0) + 1 FROM {attempt} a
     WHERE a.delivery_id = d.id),
    {started_at}, {duration_ms}, {status_code}, v.error, {excerpt}
FROM v JOIN {delivery} d ON d.id = {delivery_id}
"""

# Only the lease holder moves a delivery on, and only while it is pending;
# a success counts whoever reports it (the receiver has the message). Many
# deliveries per statement, each at most once.
_UPDATE_DELIVERIES = """
WITH v (id, status, next_attempt_at, status_code, error, completed_at,
        succeeded) AS (VALUES {rows})
UPDATE {delivery}
SET status = v.status, attempts = {delivery}.attempts + 1,
    logged_attempts = {delivery}.logged_attempts + 1,
    next_attempt_at = {next_attempt_at}, last_status_code = {status_code},
    last_error = v.error, completed_at = {completed_at},
    lease_owner = NULL, leased_until = NULL, updated_at = %s
FROM v
WHERE {delivery}.id = {id} AND {delivery}.status = %s
AND ({delivery}.lease_owner = %s OR {succeeded} = 1)
"""

# How each backend reads the columns of the VALUES above: PostgreSQL types
# a column of NULLs as text, so it is cast to the column's type.
_CASTS = {
    "postgresql": {
        "started_at": "CAST(v.started_at AS timestamp with time zone)",
        "status_code": "CAST(v.status_code AS integer)",
        "excerpt": "CAST(v.response_excerpt AS bytea)",
        "duration_ms": "CAST(v.duration_ms AS double precision)",
        "succeeded": "CAST(v.succeeded AS integer)",
        "next_attempt_at": "CAST(v.next_attempt_at AS timestamp with time zone)",
        "completed_at": "CAST(v.completed_at AS timestamp with time zone)",
        # As the key's own type: a cast of the key column instead would
        # keep the join from using its index.
        "delivery_id": "CAST(v.delivery_id AS bpchar(36))",
        "id": "CAST(v.id AS bpchar(36))",
    },
    "sqlite": {
        "started_at": "v.started_at",
        "status_code": "v.status_code",
        "excerpt": "v.response_excerpt",
        "duration_ms": "v.duration_ms",
        "succeeded": "v.succeeded",
        "next_attempt_at": "v.next_attempt_at",
        "completed_at": "v.completed_at",
        "delivery_id": "v.delivery_id",
        "id": "v.id",
    },
}

# The fallback for other databases: one statement per result (executemany).
_INSERT_ATTEMPT = """
INSERT INTO {attempt}
    (delivery_id, number, started_at, duration_ms, status_code, error,
     response_excerpt)
SELECT d.id,
    (SELECT COALESCE(MAX(a.number), 0) + 1 FROM {attempt} a
     WHERE a.delivery_id = d.id),
    %s, %s, %s, %s, %s
FROM {delivery} d WHERE d.id = %s
"""

_UPDATE_DELIVERY = """
UPDATE {delivery}
SET status = %s, attempts = attempts + 1,
    logged_attempts = logged_attempts + 1, next_attempt_at = %s,
    last_status_code = %s, last_error = %s, completed_at = %s,
    lease_owner = NULL, leased_until = NULL, updated_at = %s
WHERE id = %s AND status = %s AND (lease_owner = %s OR %s)
"""

# record()'s quick way, for deliveries it claimed (it knows how many tries
# each has in the log): the attempts as they are, numbered here...
_ATTEMPT_COLUMNS = (
    "delivery_id",
    "number",
    "started_at",
    "duration_ms",
    "status_code",
    "error",
    "response_excerpt",
)

# ...and the successes of one status code in one statement (a success counts
# whoever reports it, as above).
_UPDATE_SUCCEEDED = """
UPDATE {delivery}
SET status = %s, attempts = attempts + 1, logged_attempts = logged_attempts + 1,
    next_attempt_at = NULL, last_status_code = %s, last_error = '',
    completed_at = %s, lease_owner = NULL, leased_until = NULL, updated_at = %s
WHERE {unindexed}status = %s AND id IN ({marks})
"""

# The subscribers that answered are failing no more (their keys as one
# parameter).
_CLEAR_FAILING = {
    "sqlite": "UPDATE {subscriber} SET failing_since = NULL "
    "WHERE failing_since IS NOT NULL AND id IN (SELECT value FROM json_each(%s))",
    "postgresql": "UPDATE {subscriber} SET failing_since = NULL "
    "WHERE failing_since IS NOT NULL AND id = ANY(CAST(%s AS bigint[]))",
}

# SQLite would read the statements above through the index of pending rows
# (all of them) for "status = %s": a unary "+" keeps it to the primary key.
_UNINDEXED = {"sqlite": "+"}

# When an update left a row out (another engine had tried the delivery
# since: our lease ran out), its count of logged tries is read from the log.
# (Both tries may then carry the same number: each engine numbered its own
# from the count it claimed. The log keeps both, in order of their ids.)
_RECOUNT_LOGGED = """
UPDATE {delivery}
SET logged_attempts = (
    SELECT COUNT(*) FROM {attempt} a WHERE a.delivery_id = {delivery}.id)
WHERE id IN ({marks})
"""

#: Most rows in one multi-row statement (an INSERT, or the VALUES of the
#: record's UPDATE; a delivery has 22 parameters: under SQLite's 32,766).
#: Smaller sets of rows go in statements of power-of-two sizes (see
#: :func:`_sized_chunks`). Measured under callgrind, SQLite spent more per
#: row on one statement of 512 rows than on two of 256.
INSERT_CHUNK_SIZE = 256

_MESSAGE_COLUMNS = ("id", "event", "data", "sender", "body", "created_at")
# In the order of DjangoOutboxStore._delivery_row; the columns left out
# (lease, last status code, completion) start NULL.
_DELIVERY_COLUMNS = (
    "id",
    "message_id",
    "subscriber_id",
    "static_subscriber",
    "subscription",
    "event",
    "url",
    "content_type",
    "body",
    "hmac_digest",
    "static_secret",
    "static_extra_secrets",
    "headers",
    "timeout",
    "policy",
    "status",
    "attempts",
    "logged_attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "updated_at",
)


#: The headers Thorn makes for every try itself, as it names them (an extra
#: header cannot take these names: thorn.request.check_headers refuses them).
_MADE_BY_THORN = frozenset(
    name
    for name, _value in webhook_headers(
        event="e", delivery_id="d", content_type="c", subscription="s"
    )
    if name.lower() in RESERVED_HEADERS
)


_first = operator.itemgetter(0)


def _json_text(value: Any) -> str:
    """A JSON column's value as text (any JSON reads back as Django's
    JSONField does; orjson writes it about ten times faster)."""
    return orjson.dumps(value).decode()


def _row_marks(columns: Sequence[str]) -> str:
    """``(%s, ..., %s)`` for one row."""
    return "(" + ", ".join(["%s"] * len(columns)) + ")"


#: Results ``record`` stores per round of statements (see
#: :func:`_sized_chunks` for the sizes of the statements themselves).
RECORD_CHUNK_SIZE = 512


def _loads(value: Any, default: Any) -> Any:
    """A JSON column read by raw SQL: text on both backends, parsed here."""
    if value is None:
        return default
    if isinstance(value, (str, bytes, bytearray)):
        return orjson.loads(value)
    return value


# Decoded JSON columns of claimed rows, by their text: a batch repeats the same
# few policies and secrets, so each is parsed once. Bounded; never mutated.
_DECODED: dict[tuple[str, Any], Any] = {}
_DECODED_MAX = 4096


def _cached(kind: str, value: Any, decode: Callable[[Any], Any]) -> Any:
    if not isinstance(value, (str, bytes)):
        return decode(value)
    key = (kind, value)
    found = _DECODED.get(key)
    if found is None:
        found = decode(value)
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[key] = found
    return found


def _decode_policy(value: Any) -> dict[str, Any]:
    return dict(_loads(value, {}))


def _decode_extra(value: Any) -> tuple[str, ...]:
    return tuple(_loads(value, []))


def _decode_headers(value: Any) -> tuple[tuple[str, str], ...]:
    pairs = _loads(value, [])
    if all(type(k) is str and type(v) is str for k, v in pairs):
        return tuple([(k, v) for k, v in pairs])
    return tuple([(str(k), str(v)) for k, v in pairs])


def _policy(value: Any) -> dict[str, Any]:
    """The retry policy of a row (shared between rows: do not change it)."""
    policy: dict[str, Any] = _cached("policy", value, _decode_policy)
    return policy


def _extra_secrets(value: Any) -> tuple[str, ...]:
    extra: tuple[str, ...] = _cached("extra", value, _decode_extra)
    return extra


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    headers: tuple[tuple[str, str], ...] = _cached("headers", value, _decode_headers)
    return headers


def _rounds(
    indexes: Iterable[int], updates: Sequence[tuple[Any, ...]]
) -> Iterator[list[int]]:
    """Results split so that no delivery is twice in one (nearly always one)."""
    pending = list(indexes)
    while pending:
        seen: set[Any] = set()
        batch: list[int] = []
        later: list[int] = []
        for index in pending:
            key = updates[index][0]
            if key in seen:
                later.append(index)
            else:
                seen.add(key)
                batch.append(index)
        yield batch
        pending = later


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sized_chunks(items: Sequence[Any], largest: int) -> Iterator[Sequence[Any]]:
    """``items`` in runs of power-of-two sizes up to ``largest`` (one), the
    largest first: 700 rows, up to 256, are 256, 256, 128, 32, 16, 8 and 4.

    A multi-row statement's text depends on its number of rows, and SQLite
    parses each new text again (the driver caches prepared statements by
    text). The engine records results in batches of any size; in these
    sizes there are a few texts per statement, each parsed once.
    """
    start, left, size = 0, len(items), largest
    while left:
        while size > left:
            size //= 2
        yield items[start : start + size]
        start += size
        left -= size


@functools.lru_cache(maxsize=512)
def _qmark(sql: str) -> str:
    """``%s`` placeholders as ``?`` (the engine's SQL has no other ``%``)."""
    return sql.replace("%s", "?")


class _QmarkCursor:
    """A DB-API SQLite cursor taking the store's ``%s`` placeholders."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._raw.execute(_qmark(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> None:
        self._raw.executemany(_qmark(sql), params)

    @property
    def rowcount(self) -> int:
        count: int = self._raw.rowcount
        return count

    def fetchone(self) -> Any:
        return self._raw.fetchone()

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._raw.fetchall()
        return rows


class DjangoOutboxStore:
    """The outbox (:class:`~thorn.engine.store.OutboxStore`) in Django's database.

    Args:
        using: the database alias (default: the router's choice for writes).
        app: the Thorn app whose settings apply (default: the current one).
    """

    def __init__(self, *, using: str | None = None, app: Any = None) -> None:
        self.using = using or router.db_for_write(Delivery)
        self._app = app
        # Claimed deliveries' count of logged tries, by id, until recorded
        # or released: record() numbers their attempts without reading the
        # log. Used from one thread (the engine's database thread).
        self._logged: dict[str, int] = {}

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connections[self.using]

    @property
    def settings(self) -> Any:
        from ..app import app_or_default

        return app_or_default(self._app).settings

    def _tables(self) -> dict[str, str]:
        quote = self.connection.ops.quote_name
        return {
            "delivery": quote(Delivery._meta.db_table),
            "subscriber": quote(Subscriber._meta.db_table),
            "attempt": quote(Attempt._meta.db_table),
            "message": quote(Message._meta.db_table),
        }

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A cursor for the engine's statements (``%s`` placeholders). On
        SQLite the DB-API one: Django's rewrites the placeholders of each
        statement with a regular expression, every time, and the record's
        statements are long."""
        if self.connection.vendor != "sqlite":
            with self.connection.cursor() as cursor:
                yield cursor
            return
        self.connection.ensure_connection()
        raw = self.connection.connection.cursor()
        try:
            yield _QmarkCursor(raw)
        finally:
            raw.close()

    def _time(self, value: datetime.datetime | None) -> Any:
        """A datetime as this backend takes it in raw SQL."""
        if value is None:
            return None
        return self.connection.ops.adapt_datetimefield_value(value)

    # -- writing the outbox ---------------------------------------------------------

    def enqueue(
        self, requests: Sequence[Request], *, now: datetime.datetime | None = None
    ) -> None:
        """Store one message per send and one delivery per request.

        Two bulk inserts, in the caller's transaction when one is open (so a
        rollback takes them back), else in a transaction of their own.
        Requests of one send carry the same ``message_id`` (the outbox
        dispatcher sets it); requests without one are grouped by event and
        payload.
        """
        if not requests:
            return
        now = now or timezone.now()
        messages: dict[Any, tuple[Any, ...]] = {}
        deliveries: list[tuple[Any, ...]] = []
        time = self._time_adapter()
        when = time(now)
        texts: dict[Any, str] = {}  # JSON columns the requests share
        for request in requests:
            if len(request.id) != ID_LENGTH:
                raise ValueError(
                    f"the outbox keeps deliveries under UUID ids ({ID_LENGTH} "
                    f"characters, as thorn.request.new_id makes): {request.id!r}"
                )
            key = getattr(request, "message_id", None) or (
                request.event,
                id(request.data),
            )
            body = request.body
            if body is None:
                body = request._encoded_body()
            message = messages.get(key)
            if message is None:
                # The body is kept once, with the message; a delivery keeps
                # its own only if it differs (another content type).
                message = messages[key] = (
                    key if isinstance(key, str) else new_id(),
                    request.event,
                    _payload_text(request.data),
                    None if request.sender is None else str(request.sender)[:255],
                    body,
                    when,
                )
            own = None if body == message[4] else body
            deliveries.append(self._delivery_row(request, message[0], own, when, texts))
        if self.connection.in_atomic_block:
            self._insert(list(messages.values()), deliveries)
        else:
            with transaction.atomic(using=self.using):
                self._insert(list(messages.values()), deliveries)
        if signals.message_queued.receivers:
            self._announce_queued(deliveries)

    def _announce_queued(self, deliveries: list[tuple[Any, ...]]) -> None:
        """``message_queued`` per message, once the caller's transaction commits."""
        by_message: dict[str, list[str]] = {}
        for row in deliveries:
            by_message.setdefault(row[1], []).append(row[0])

        def announce() -> None:
            for message_id, ids in by_message.items():
                signals.send(signals.message_queued, message_id, deliveries=ids)

        transaction.on_commit(announce, using=self.using)

    def _insert(
        self, messages: list[tuple[Any, ...]], deliveries: list[tuple[Any, ...]]
    ) -> None:
        """Multi-row INSERTs of prepared rows: Django's bulk_create would build
        a model instance and prepare each field of each row again."""
        tables = self._tables()
        with self._cursor() as cursor:
            self._insert_rows(cursor, tables["message"], _MESSAGE_COLUMNS, messages)
            self._insert_rows(cursor, tables["delivery"], _DELIVERY_COLUMNS, deliveries)

    def _insert_rows(
        self,
        cursor: Any,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        sized: bool = False,
    ) -> None:
        """Insert ``rows`` (values in ``columns`` order) into ``table``.

        PostgreSQL: one ``COPY``. psycopg parses the placeholders of an
        ``INSERT`` in Python, and that grows faster than the statement
        (11,000 of them took 100 ms); one row per statement through
        ``executemany`` cost 83 µs a row in the record, ``COPY`` a few.
        Elsewhere: multi-row statements of ``INSERT_CHUNK_SIZE`` rows, and
        with ``sized`` (for row counts that vary from call to call, as the
        engine's results do) in power-of-two sizes (:func:`_sized_chunks`)."""
        if not rows:
            return
        names = ", ".join(columns)
        if self.connection.vendor == "postgresql":
            self._copy_rows(cursor, f"COPY {table} ({names}) FROM STDIN", rows)
            return
        insert = f"INSERT INTO {table} ({names}) VALUES "  # noqa: S608
        one = _row_marks(columns)
        chunks = _sized_chunks if sized else _chunks
        for chunk in chunks(rows, INSERT_CHUNK_SIZE):
            cursor.execute(
                insert + ", ".join([one] * len(chunk)),
                [value for row in chunk for value in row],
            )

    def _copy_rows(self, cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``COPY ... FROM STDIN`` of ``rows`` on psycopg's own cursor, logged
        like Django's statements (so ``assertNumQueries``, the debug toolbar
        and ``connection.queries`` see it)."""
        started = time.perf_counter()
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
        connection = self.connection
        if connection.queries_logged:
            connection.queries_log.append(
                {
                    "sql": f"{sql} -- {len(rows)} rows",
                    "time": f"{time.perf_counter() - started:.3f}",
                }
            )

    @staticmethod
    def _delivery_row(
        request: Request,
        message_id: str,
        body: bytes | None,
        when: Any,
        texts: dict[Any, str],
    ) -> tuple[Any, ...]:
        """A delivery's row, in ``_DELIVERY_COLUMNS`` order (``body``: None
        for the message's). ``texts``: the JSON columns' texts made so far in
        this enqueue (the requests of a send share their policy and headers:
        each is written once)."""
        sub = request.subscriber
        stored = isinstance(sub, Subscriber) and sub.pk is not None
        # Only what Thorn does not make itself (the User-Agent, extra
        # headers): the engine makes its own afresh for every try
        # (thorn.engine.core). Deliveries of one send, even to many
        # subscribers, then share one short text, which a claim decodes once.
        key: Any = (request.user_agent, *request.extra_headers)
        headers = texts.get(key)
        if headers is None:
            headers = texts[key] = _json_text(
                [
                    list(pair)
                    for pair in request.default_headers
                    if pair[0] not in _MADE_BY_THORN
                ]
            )
        policy = texts.get(id(request.policy))
        if policy is None:  # (the policy lives as long as the request)
            policy = texts[id(request.policy)] = _json_text(request.policy.to_dict())
        if stored:
            # Only a subscriber without a row here has its secret copied:
            # stored ones are read when claimed, so a rotation applies.
            secret, extra = None, "[]"
        else:
            secret = getattr(sub, "hmac_secret", None)
            secrets = getattr(sub, "extra_secrets", None)
            extra = _json_text(list(secrets)) if secrets else "[]"
        return (
            request.id,
            message_id,
            sub.pk if stored else None,
            not stored,
            request.subscription,
            request.event,
            str(sub.url),
            request.content_type,
            body,
            getattr(sub, "hmac_digest", None) or "sha256",
            secret,
            extra,
            headers,
            request.timeout,
            policy,
            PENDING,
            0,
            0,
            when,
            "",
            when,
            when,
        )

    # -- the engine's side (OutboxStore) --------------------------------------------

    def claim(
        self, *, owner: str, limit: int, lease: float, now: datetime.datetime
    ) -> list[DeliveryTask]:
        """Lease up to ``limit`` due deliveries to ``owner`` for ``lease`` seconds.

        The lease is written as the delivery's ``next_attempt_at`` too: if
        the owner dies, the delivery is due again when the lease runs out.
        """
        if limit <= 0:
            return []
        until = now + datetime.timedelta(seconds=lease)
        vendor = self.connection.vendor
        with transaction.atomic(using=self.using):
            if vendor == "postgresql":
                rows = self._claim_postgresql(owner, limit, until, now)
            elif vendor == "sqlite":
                rows = self._claim_sqlite(owner, limit, until, now)
            else:
                rows = self._claim_portable(owner, limit, until, now)
        rows.sort(key=_first)  # ids: text, or one type of id object per batch
        return self._tasks_of(rows, now)

    def _claim_postgresql(
        self,
        owner: str,
        limit: int,
        until: datetime.datetime,
        now: datetime.datetime,
    ) -> list[tuple[Any, ...]]:
        sql = self._claim_sql_postgresql(_OLDEST_DUE)
        params: list[Any] = [PENDING, now, limit, owner, until, until, now]
        with self.connection.cursor() as cursor:
            cursor.execute(_PLAN_CLAIM_POSTGRESQL)
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def _claim_sql_postgresql(self, pick: str) -> str:
        """PostgreSQL's claim of the rows ``pick`` selects: a condition on
        ``d`` (the delivery), ``{due}`` in it standing for the due condition,
        and an ORDER BY and LIMIT if any. Its parameters: those of ``pick``,
        then owner, leased until (twice), now."""
        tables = self._tables()
        return _CLAIM_POSTGRESQL.format(
            pick=pick.format(due=_DUE.format(**tables)),
            returning=", ".join(f"t.{c.strip()}" for c in _TASK_COLUMNS.split(",")),
            **tables,
        )

    def _claim_sqlite(
        self,
        owner: str,
        limit: int,
        until: datetime.datetime,
        now: datetime.datetime,
    ) -> list[tuple[Any, ...]]:
        return self._claim_picked_sqlite(
            _OLDEST_DUE_SQLITE, [self._time(now), limit], owner, until, now
        )

    def _claim_picked_sqlite(
        self,
        pick: str,
        params: Sequence[Any],
        owner: str,
        until: datetime.datetime,
        now: datetime.datetime,
    ) -> list[tuple[Any, ...]]:
        """Read the pending rows ``pick`` selects (``_PICK_SQLITE``), lease
        them and return them with their subscriber's and message's columns
        (``_TASK_COLUMNS`` then ``_TASK_FIELDS``'). In a transaction."""
        tables = self._tables()
        self.connection.ensure_connection()
        # The DB-API cursor: Django's would rewrite each statement's
        # placeholders with a regular expression, every time.
        cursor = self.connection.connection.cursor()
        try:
            # Take the write lock before reading (a statement that may write
            # does, even one that writes nothing): in a DEFERRED transaction
            # another engine could otherwise pick the same rows meanwhile,
            # and one of the two would fail on its stale snapshot.
            cursor.execute(_LOCK_SQLITE.format(**tables))
            picked = self._json_rows(
                cursor, _PICK_SQLITE.format(pick=pick, **tables), params
            )
            if not picked:
                return []
            rowids = [row.pop() for row in picked]
            at = self._time(until)
            cursor.execute(
                _LEASE_SQLITE.format(**tables),
                [owner, at, at, self._time(now), _json_text(rowids)],
            )
            keys = {row[-1] for row in picked} - {None}
            current = {}
            if keys:
                for pk, *columns in self._json_rows(
                    cursor,
                    _SUBSCRIBERS_SQLITE.format(**tables),
                    [_json_text(sorted(keys))],
                ):
                    current[pk] = tuple(columns)
            shared = {row[1] for row in picked if row[4] is None}
            bodies: dict[Any, Any] = {}
            if shared:
                for pk, body in self._json_rows(
                    cursor,
                    _BODIES_SQLITE.format(**tables),
                    [_json_text(sorted(shared))],
                ):
                    bodies[pk] = None if body is None else bytes.fromhex(body)
        finally:
            cursor.close()
        missing = (None, None, None, None, None)
        rows = []
        for row in picked:
            body = row[4]
            row[4] = None if body is None else bytes.fromhex(body)
            rows.append((*row, *current.get(row[-1], missing), bodies.get(row[1])))
        return rows

    @staticmethod
    def _json_rows(cursor: Any, sql: str, params: Sequence[Any]) -> list[list[Any]]:
        """The rows of a ``SELECT json_group_array(json_array(...))``."""
        cursor.execute(sql, params)
        found = cursor.fetchone()
        if not found or not found[0]:
            return []
        rows: list[list[Any]] = orjson.loads(found[0])
        return rows

    def _claim_portable(
        self,
        owner: str,
        limit: int,
        until: datetime.datetime,
        now: datetime.datetime,
    ) -> list[tuple[Any, ...]]:
        """Any other database: lock (skipping locked rows where it can), then lease."""
        features = self.connection.features
        due = self._due(now).order_by("next_attempt_at")
        if features.has_select_for_update:
            due = due.select_for_update(
                skip_locked=features.has_select_for_update_skip_locked
            )
        ids = list(due.values_list("pk", flat=True)[:limit])
        if not ids:
            return []
        deliveries = Delivery.objects.using(self.using)
        deliveries.filter(pk__in=ids, status=PENDING).update(
            lease_owner=owner, leased_until=until, next_attempt_at=until, updated_at=now
        )
        rows = deliveries.filter(pk__in=ids, lease_owner=owner).values_list(
            *_TASK_FIELDS
        )
        return [tuple(row) for row in rows]

    def _due(self, now: datetime.datetime) -> Any:
        # EXISTS rather than a join: FOR UPDATE cannot lock the nullable side
        # of an outer join.
        active = Subscriber.objects.using(self.using).filter(
            pk=OuterRef("subscriber_id"), active=True
        )
        return (
            Delivery.objects.using(self.using)
            .filter(status=PENDING, next_attempt_at__lte=now)
            .filter(Q(static_subscriber=True) | Exists(active))
        )

    @staticmethod
    def _previous(secret: str, until: Any, now: datetime.datetime) -> tuple[str, ...]:
        """The rotated-out secret while its overlap lasts (raw SQL's datetime)."""
        if isinstance(until, str):  # SQLite's raw text
            until = datetime.datetime.fromisoformat(until)
        if isinstance(until, datetime.datetime) and until.tzinfo is None:
            until = until.replace(tzinfo=datetime.UTC)
        return previous_secrets(secret, until, now)

    def _tasks_of(
        self, rows: Sequence[Sequence[Any]], now: datetime.datetime
    ) -> list[DeliveryTask]:
        """The tasks of claimed rows (:meth:`_task_of` for each), the JSON
        columns a batch repeats decoded once."""
        task_of = self._task_of
        decoded: dict[Any, Any] = {}
        return [task_of(row, now, decoded) for row in rows]

    def _task_of(
        self,
        row: Sequence[Any],
        now: datetime.datetime,
        decoded: dict[Any, Any] | None = None,
    ) -> DeliveryTask:
        (
            pk,
            message_id,
            event,
            url,
            body,
            content_type,
            subscription,
            static_secret,
            static_extra,
            digest,
            attempts,
            headers,
            timeout,
            policy,
            logged,
            subscriber_id,
            current_secret,
            current_digest,
            current_url,
            previous_secret,
            previous_until,
            message_body,
        ) = row
        if body is None:
            body = message_body if message_body is not None else b""
        pk = pk if type(pk) is str else str(pk)
        self._logged[pk] = int(logged)
        extra: tuple[str, ...] = ()
        if subscriber_id is not None:
            secret = current_secret
            digest = current_digest or digest
            url = current_url or url
            if previous_secret:
                extra = self._previous(previous_secret, previous_until, now)
        else:
            secret = static_secret
            if static_extra != "[]":  # (nearly always: no extra secrets)
                extra = _extra_secrets(static_extra)
        pairs: tuple[tuple[str, str], ...]
        rules: dict[str, Any]
        if decoded is None or type(headers) is not str or type(policy) is not str:
            # (PostgreSQL's driver may give jsonb decoded already.)
            pairs, rules = _headers(headers), _policy(policy)
        else:
            # Keyed by the stored text: an array (headers) is never equal to
            # an object (policy).
            found = decoded.get(headers)
            if found is None:
                found = decoded[headers] = _headers(headers)
            pairs = found
            found = decoded.get(policy)
            if found is None:
                found = decoded[policy] = _policy(policy)
            rules = found
        # Positional: this runs once per claimed delivery.
        return DeliveryTask(
            pk,
            message_id if type(message_id) is str else str(message_id),
            event,
            url,
            body if type(body) is bytes else bytes(body),
            content_type,
            subscription or "",
            secret or None,
            digest or "sha256",
            int(attempts),
            extra,
            pairs,
            float(timeout),
            rules,
            subscriber_id,
        )

    def record(
        self, results: Sequence[AttemptResult], *, owner: str, now: datetime.datetime
    ) -> None:
        """Store attempts and new states in one transaction; drop the leases.

        On PostgreSQL and SQLite, per ``RECORD_CHUNK_SIZE`` results: one
        multi-row INSERT of the attempts, one UPDATE of the successes per
        status code, one of the rest. Attempts of deliveries this store
        claimed are numbered from the count it read then; others (and all,
        if a delivery was deleted meanwhile) are numbered from the log by
        the statements themselves. Elsewhere each statement runs for every
        result (executemany). Then, only where the batch has such
        subscribers: one to end runs of failures, one or two to start them,
        one to find those failing for ``THORN_AUTO_DISABLE_AFTER`` and one to
        disable them, two to disable those that answered 410 Gone.
        """
        if not results:
            return
        settings = self.settings
        excerpt_size = int(settings.THORN_ATTEMPT_EXCERPT_SIZE)
        tables = self._tables()
        casts = _CASTS.get(self.connection.vendor)
        time = self._time_adapter()
        when = time(now)
        attempts = []
        updates = []
        for result in results:
            error = (result.error or "")[:MAX_ERROR_LENGTH]
            code = result.status_code
            excerpt = result.response_excerpt
            if len(excerpt) > excerpt_size or type(excerpt) is not bytes:
                excerpt = bytes(excerpt[:excerpt_size])
            attempts.append(
                (
                    result.delivery_id,
                    time(result.started_at),
                    result.duration * 1000.0,
                    code,
                    error,
                    excerpt,
                )
            )
            outcome = result.outcome
            state: tuple[Any, ...]
            if outcome == "succeeded":
                state = (SUCCEEDED, None, code, error, when, 1)
            elif outcome == "retry":
                next_at = result.next_attempt_at
                later = when if next_at is None else time(next_at)
                state = (PENDING, later, code, error, None, 0)
            else:  # failed, gone
                state = (FAILED, None, code, error, when, 0)
            updates.append((result.delivery_id, *state))
        logged = self._logged
        numbers = [logged.pop(result.delivery_id, None) for result in results]
        try:
            self._store_results(
                tables, casts, attempts, updates, numbers, owner, when, results, now
            )
        except IntegrityError:
            if all(number is None for number in numbers):
                raise
            # A delivery was deleted while it was tried: the exact statements
            # log nothing for it (the others as ever).
            self._store_results(
                tables,
                casts,
                attempts,
                updates,
                [None] * len(numbers),
                owner,
                when,
                results,
                now,
            )

    def _store_results(
        self,
        tables: dict[str, str],
        casts: dict[str, str] | None,
        attempts: list[tuple[Any, ...]],
        updates: list[tuple[Any, ...]],
        numbers: list[int | None],
        owner: str,
        when: Any,
        results: Sequence[AttemptResult],
        now: datetime.datetime,
    ) -> None:
        with transaction.atomic(using=self.using), self._cursor() as cursor:
            if casts is None:
                self._record_each(cursor, tables, attempts, updates, owner, when)
            else:
                quick: set[Any] = set()
                for batch in _rounds(range(len(updates)), updates):
                    for chunk in _chunks(batch, RECORD_CHUNK_SIZE):
                        # A delivery's second result in one call is numbered
                        # from the log (its first is stored by then).
                        known: list[int] = []
                        left: list[int] = []
                        for i in chunk:
                            if numbers[i] is None or updates[i][0] in quick:
                                left.append(i)
                            else:
                                known.append(i)
                        quick.update(updates[i][0] for i in known)
                        if known:
                            rows = []
                            for i in known:
                                pk, started, ms, code, error, excerpt = attempts[i]
                                number = numbers[i] + 1  # type: ignore[operator]
                                rows.append(
                                    (pk, number, started, ms, code, error, excerpt)
                                )
                            self._record_numbered(
                                cursor,
                                tables,
                                casts,
                                rows,
                                [updates[i] for i in known],
                                owner,
                                when,
                            )
                        if left:
                            self._record_many(
                                cursor,
                                tables,
                                casts,
                                [attempts[i] for i in left],
                                [updates[i] for i in left],
                                owner,
                                when,
                            )
            self._update_subscribers(results, now)

    def _record_numbered(
        self,
        cursor: Any,
        tables: dict[str, str],
        casts: dict[str, str],
        attempts: list[tuple[Any, ...]],
        updates: list[tuple[Any, ...]],
        owner: str,
        when: Any,
    ) -> None:
        """Attempts (rows in ``_ATTEMPT_COLUMNS`` order, numbered) and states
        of claimed deliveries, each there once: an INSERT, an UPDATE per
        success code, one for the rest."""
        vendor = self.connection.vendor
        unindexed = _UNINDEXED.get(vendor, "")
        self._insert_rows(
            cursor, tables["attempt"], _ATTEMPT_COLUMNS, attempts, sized=True
        )
        by_code: dict[Any, list[Any]] = {}
        others = []
        for row in updates:
            if row[1] == SUCCEEDED:
                by_code.setdefault(row[3], []).append(row[0])
            else:
                others.append(row)
        missed: list[Any] = []
        for code, ids in by_code.items():
            if vendor == "postgresql":
                # One array parameter (see _insert_rows).
                # As the key's own type, or the index is not used.
                sql = _UPDATE_SUCCEEDED.replace(
                    "IN ({marks})", "= ANY(CAST(%s AS char(36)[]))"
                )
                params = [SUCCEEDED, code, when, when, PENDING, ids]
            elif vendor == "sqlite":
                # One JSON array parameter: one statement text, parsed once.
                sql = _UPDATE_SUCCEEDED.replace(
                    "IN ({marks})", "IN (SELECT value FROM json_each(%s))"
                )
                params = [SUCCEEDED, code, when, when, PENDING, _json_text(ids)]
            else:
                marks = ", ".join(["%s"] * len(ids))
                sql = _UPDATE_SUCCEEDED.replace("{marks}", marks)
                params = [SUCCEEDED, code, when, when, PENDING, *ids]
            cursor.execute(sql.format(unindexed=unindexed, **tables), params)
            if cursor.rowcount != len(ids):
                missed.extend(ids)
        # In power-of-two runs, as the attempts (see _sized_chunks).
        for run in _sized_chunks(others, INSERT_CHUNK_SIZE):
            rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(run))
            cursor.execute(
                _UPDATE_DELIVERIES.format(rows=rows, **tables, **casts),
                [*(value for row in run for value in row), when, PENDING, owner],
            )
            changed = cursor.rowcount
            if changed < 0:
                # Python 3.11's sqlite3 counts no rows for a statement that
                # starts with WITH.
                cursor.execute("SELECT changes()")
                changed = cursor.fetchone()[0]
            if changed != len(run):
                missed.extend(row[0] for row in run)
        for chunk in _chunks(missed, CHUNK_SIZE):
            cursor.execute(
                _RECOUNT_LOGGED.format(marks=", ".join(["%s"] * len(chunk)), **tables),
                list(chunk),
            )

    @staticmethod
    def _record_many(
        cursor: Any,
        tables: dict[str, str],
        casts: dict[str, str],
        attempts: list[tuple[Any, ...]],
        updates: list[tuple[Any, ...]],
        owner: str,
        when: Any,
    ) -> None:
        """Attempts and states of deliveries each there once, in two statements."""
        rows = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(attempts))
        cursor.execute(
            _INSERT_ATTEMPTS.format(rows=rows, **tables, **casts),
            [value for row in attempts for value in row],
        )
        rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(updates))
        cursor.execute(
            _UPDATE_DELIVERIES.format(rows=rows, **tables, **casts),
            [*(value for row in updates for value in row), when, PENDING, owner],
        )

    @staticmethod
    def _record_each(
        cursor: Any,
        tables: dict[str, str],
        attempts: list[tuple[Any, ...]],
        updates: list[tuple[Any, ...]],
        owner: str,
        when: Any,
    ) -> None:
        """Attempts and states, one statement per result (other databases)."""
        cursor.executemany(
            _INSERT_ATTEMPT.format(**tables),
            [(*row[1:], row[0]) for row in attempts],
        )
        cursor.executemany(
            _UPDATE_DELIVERY.format(**tables),
            [
                (status, next_at, code, error, done, when, pk, PENDING, owner, bool(ok))
                for pk, status, next_at, code, error, done, ok in updates
            ],
        )

    def _time_adapter(self) -> Callable[[datetime.datetime | None], Any]:
        """:meth:`_time` for a batch: quick on SQLite, for UTC datetimes."""
        if self.connection.vendor != "sqlite":
            return self._time
        slow = self._time
        utc = datetime.UTC
        seconds: dict[int, str] = {}
        epoch = datetime.datetime(1970, 1, 1, tzinfo=utc)

        def adapt(value: datetime.datetime | None) -> Any:
            # What Django's SQLite backend writes: naive UTC, str() (no
            # fraction when it is 0). A batch's times fall in a few seconds:
            # each second is formatted once (isoformat() with a time zone
            # costs more than the rest of a result's row; the key, seconds
            # since 1970 by subtraction, a third of that).
            if value is not None and value.tzinfo is utc:
                since = value - epoch
                key = since.days * 86400 + since.seconds
                text = seconds.get(key)
                if text is None:
                    text = value.replace(microsecond=0).isoformat(" ")[:19]
                    seconds[key] = text
                micro = value.microsecond
                return f"{text}.{micro:06d}" if micro else text
            return slow(value)

        return adapt

    @staticmethod
    def _next_state(
        result: AttemptResult, now: datetime.datetime
    ) -> tuple[str, datetime.datetime | None, datetime.datetime | None]:
        """(status, next_attempt_at, completed_at) after ``result``."""
        if result.outcome == "succeeded":
            return SUCCEEDED, None, now
        if result.outcome == "retry":
            return PENDING, result.next_attempt_at or now, None
        return FAILED, None, now  # failed, gone

    def _update_subscribers(
        self, results: Sequence[AttemptResult], now: datetime.datetime
    ) -> None:
        last: dict[Any, AttemptResult] = {}
        succeeded: set[Any] = set()
        gone: set[Any] = set()
        for result in sorted(results, key=lambda r: r.started_at):
            key = result.subscriber_key
            if key is None:
                if result.outcome == "gone":
                    logger.warning(
                        "delivery %s: a subscriber without a row answered "
                        "410 Gone; remove it from THORN_SUBSCRIBERS",
                        result.delivery_id,
                    )
                continue
            last[key] = result
            if result.outcome == "succeeded":
                succeeded.add(key)
            elif result.outcome == "gone":
                gone.add(key)
        if not last:
            return
        fine = [k for k, r in last.items() if r.outcome == "succeeded"]
        failing = [k for k, r in last.items() if r.outcome in ("retry", "failed")]
        subscribers = Subscriber.objects.using(self.using)
        if fine:
            self._clear_failing(fine)
        if failing:
            # A success earlier in the batch ended the previous run.
            again = [k for k in failing if k in succeeded]
            if again:
                subscribers.filter(pk__in=again, active=True).update(failing_since=now)
            subscribers.filter(
                pk__in=failing, active=True, failing_since__isnull=True
            ).update(failing_since=now)
            self._auto_disable([k for k in failing if k not in succeeded], now)
        if gone:
            self._disable_gone(gone, now)

    def _clear_failing(self, keys: Sequence[Any]) -> None:
        """Subscribers ``keys`` answered: they are failing no more."""
        statement = _CLEAR_FAILING.get(self.connection.vendor)
        if statement is None or not all(type(k) is int for k in keys):
            Subscriber.objects.using(self.using).filter(
                pk__in=keys, failing_since__isnull=False
            ).update(failing_since=None)
            return
        # One parameter, not one per subscriber: the ORM prepares each of
        # up to a batch's worth of keys in Python.
        listed = list(keys)
        sqlite = self.connection.vendor == "sqlite"
        with self._cursor() as cursor:
            cursor.execute(
                statement.format(**self._tables()),
                [_json_text(listed) if sqlite else listed],
            )

    def _auto_disable(self, keys: Sequence[Any], now: datetime.datetime) -> None:
        setting = self.settings.THORN_AUTO_DISABLE_AFTER
        if not keys or setting is None:
            return
        period = as_timedelta(setting, setting="THORN_AUTO_DISABLE_AFTER")
        if period <= datetime.timedelta(0):
            return
        subscribers = Subscriber.objects.using(self.using)
        stale = list(
            subscribers.filter(
                pk__in=keys, active=True, failing_since__lte=now - period
            ).values_list("pk", "uuid", "url", "failing_since")
        )
        if not stale:
            return
        reason = f"failed without a success for {_describe(period)}"
        subscribers.filter(pk__in=[pk for pk, *_rest in stale]).update(
            active=False,
            disabled_reason=reason,
            disabled_at=now,
            failing_since=None,
            updated_at=now,
        )
        self._announce_disabled({pk: reason for pk, *_rest in stale})
        for _pk, uuid, url, since in stale:
            logger.warning(
                "disabled subscription %s (%s): its deliveries have failed "
                "since %s (THORN_AUTO_DISABLE_AFTER is %s)",
                uuid,
                redact_url(url),
                since.isoformat() if since else "?",
                _describe(period),
            )

    def _disable_gone(self, keys: Iterable[Any], now: datetime.datetime) -> None:
        subscribers = Subscriber.objects.using(self.using)
        found = list(
            subscribers.filter(pk__in=list(keys), active=True).values_list(
                "pk", "uuid", "url"
            )
        )
        if not found:
            return
        reasons = {
            pk: f"410 Gone from {redact_url(url)}"[:255] for pk, _u, url in found
        }
        subscribers.filter(pk__in=list(reasons)).update(
            active=False,
            disabled_reason=Case(
                *[When(pk=pk, then=Value(reason)) for pk, reason in reasons.items()]
            ),
            disabled_at=now,
            failing_since=None,
            updated_at=now,
        )
        self._announce_disabled(reasons)
        for _pk, uuid, url in found:
            logger.warning(
                "disabled subscription %s (%s): it answered 410 Gone",
                uuid,
                redact_url(url),
            )

    def _announce_disabled(self, reasons: dict[Any, str]) -> None:
        """``subscriber_disabled`` for each, once the transaction commits."""
        if not signals.subscriber_disabled.receivers:
            return
        found = list(Subscriber.objects.using(self.using).filter(pk__in=list(reasons)))

        def announce() -> None:
            for subscriber in found:
                signals.send(
                    signals.subscriber_disabled,
                    subscriber,
                    reason=reasons[subscriber.pk],
                )

        transaction.on_commit(announce, using=self.using)

    def release(self, delivery_ids: Sequence[str], *, owner: str) -> None:
        """Give leased deliveries back untried: due again at once."""
        if not delivery_ids:
            return
        for pk in delivery_ids:
            self._logged.pop(pk, None)
        now = timezone.now()
        Delivery.objects.using(self.using).filter(
            pk__in=list(delivery_ids), lease_owner=owner, status=PENDING
        ).update(
            lease_owner=None, leased_until=None, next_attempt_at=now, updated_at=now
        )

    def backlog(self, *, now: datetime.datetime) -> int:
        """How many deliveries are due now (and would be claimed)."""
        count: int = self._due(now).count()
        return count

    # -- operations -----------------------------------------------------------------

    def replayable(
        self,
        *,
        event: str | None = None,
        subscriber: Any = None,
        status: str = "failed",
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        ids: Sequence[str] | None = None,
    ) -> Any:
        """The deliveries :meth:`replay` would queue again (a query set).

        Deliveries of a deleted subscriber are never replayed: they have
        nowhere to go.
        """
        try:
            states = REPLAYABLE[status]
        except KeyError:
            raise ValueError(
                f"status must be one of {sorted(REPLAYABLE)}, not {status!r}"
            ) from None
        query = (
            Delivery.objects.using(self.using)
            .filter(status__in=states)
            .filter(Q(static_subscriber=True) | Q(subscriber__isnull=False))
        )
        if event is not None:
            query = query.filter(event=event)
        if subscriber is not None:
            uuid = getattr(subscriber, "uuid", subscriber)
            query = query.filter(subscription=str(uuid))
        if since is not None:
            query = query.filter(created_at__gte=since)
        if until is not None:
            query = query.filter(created_at__lt=until)
        if ids is not None:
            query = query.filter(pk__in=list(ids))
        return query

    def replay(
        self,
        *,
        event: str | None = None,
        subscriber: Any = None,
        status: str = "failed",
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
        ids: Sequence[str] | None = None,
        now: datetime.datetime,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Queue finished deliveries again, due ``now``, with their ids.

        ``status`` is ``"failed"`` (default), ``"succeeded"`` or ``"all"``
        (both); ``subscriber`` a uuid or a subscriber; ``since``/``until``
        bound the creation time. The retry ladder starts again: the count
        of tries goes back to 0 (the attempt log keeps every try, numbered
        on). Works in chunks; each one's size is passed to ``progress``.
        Returns how many were queued.
        """
        matching = self.replayable(
            event=event,
            subscriber=subscriber,
            status=status,
            since=since,
            until=until,
            ids=ids,
        )
        states = REPLAYABLE[status]
        total = 0
        while True:
            chunk = list(matching.values_list("pk", flat=True)[:CHUNK_SIZE])
            if not chunk:
                return total
            done = (
                Delivery.objects.using(self.using)
                .filter(pk__in=chunk, status__in=states)
                .update(
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    completed_at=None,
                    lease_owner=None,
                    leased_until=None,
                    updated_at=now,
                )
            )
            total += done
            if progress is not None:
                progress(done)

    def purgeable(
        self, *, older_than: datetime.timedelta, now: datetime.datetime
    ) -> Any:
        """The messages :meth:`purge` would delete (a query set)."""
        cutoff = now - older_than
        unfinished = Delivery.objects.using(self.using).filter(
            Q(message=OuterRef("pk"))
            & (Q(status__in=[PENDING, FAILED]) | Q(completed_at__gte=cutoff))
        )
        return (
            Message.objects.using(self.using)
            .filter(created_at__lt=cutoff)
            .filter(~Exists(unfinished))
        )

    def purge(
        self,
        *,
        older_than: datetime.timedelta,
        now: datetime.datetime,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished messages older than ``older_than``, with their log.

        A message goes when every one of its deliveries succeeded or was
        cancelled before ``now - older_than``; one with a pending or failed
        delivery stays. Returns how many messages were deleted.
        """
        old = self.purgeable(older_than=older_than, now=now).order_by("created_at")
        tables = self._tables()
        quote = self.connection.ops.quote_name
        message_table = quote(Message._meta.db_table)
        total = 0
        while True:
            ids = list(old.values_list("pk", flat=True)[:CHUNK_SIZE])
            if not ids:
                return total
            marks = ", ".join(["%s"] * len(ids))
            # Raw deletes: the ORM would load every delivery (body and all)
            # to cascade.
            with transaction.atomic(using=self.using), self.connection.cursor() as c:
                c.execute(
                    f"DELETE FROM {tables['attempt']} WHERE delivery_id IN "  # noqa: S608
                    f"(SELECT id FROM {tables['delivery']} "
                    f"WHERE message_id IN ({marks}))",
                    ids,
                )
                c.execute(
                    f"DELETE FROM {tables['delivery']} "  # noqa: S608
                    f"WHERE message_id IN ({marks})",
                    ids,
                )
                c.execute(
                    f"DELETE FROM {message_table} WHERE id IN ({marks})",  # noqa: S608
                    ids,
                )
                total += c.rowcount
            if progress is not None:
                progress(len(ids))

    def resume_subscriber(
        self, subscriber: Any, *, now: datetime.datetime | None = None
    ) -> int:
        """Make the pending deliveries of a re-enabled subscriber due now."""
        return self.resume_subscribers([subscriber], now=now)

    def resume_subscribers(
        self, subscribers: Iterable[Any], *, now: datetime.datetime | None = None
    ) -> int:
        """:meth:`resume_subscriber` for many (instances or primary keys)."""
        keys = [getattr(sub, "pk", sub) for sub in subscribers]
        if not keys:
            return 0
        now = now or timezone.now()
        count: int = (
            Delivery.objects.using(self.using)
            .filter(subscriber__in=keys, status=PENDING)
            .filter(Q(next_attempt_at__gt=now) | Q(next_attempt_at__isnull=True))
            .filter(Q(leased_until__isnull=True) | Q(leased_until__lte=now))
            .update(next_attempt_at=now, updated_at=now)
        )
        return count


def _payload_text(data: Any) -> str:
    """The payload as JSON text for people; the body sent is stored apart."""
    try:
        return dumps(data, default=str)
    except ValueError:  # NaN and the like: the body was encoded another way
        return ""


def _describe(period: datetime.timedelta) -> str:
    """``5 days``, ``36 hours``, ``90 seconds``: a period as people write it."""
    seconds = int(period.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


class WorkerOutboxStore(DjangoOutboxStore):
    """The store of an engine (``thorn_worker``, ``serve``): it closes its
    database connection when the engine is done with it."""

    def close(self) -> None:
        # Called in the engine's database thread: the connection is that
        # thread's own.
        connections[self.using].close()
