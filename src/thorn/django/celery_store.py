"""The outbox as the Celery workers see it: claim given ids, sweep lost ones.

:class:`CeleryOutboxStore` is the Django outbox store
(:class:`~thorn.django.store.DjangoOutboxStore`) with what the Celery
dispatcher adds: a worker leases the deliveries a task names
(:meth:`~CeleryOutboxStore.claim_ids`) instead of the oldest due ones, and
the sweeper finds deliveries that have been due for a while with nobody
holding them (:meth:`~CeleryOutboxStore.sweep`): their task was lost, or
the worker that held them died. Recording attempts, releasing and the
rules of leases are the store's own: a claim moves ``next_attempt_at`` to
the end of the lease, so a delivery held by a dead worker is due again when
its lease runs out.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, transaction

from ..engine.store import DeliveryTask
from .models import Delivery
from .store import (
    _TASK_FIELDS,
    CHUNK_SIZE,
    PENDING,
    DjangoOutboxStore,
    _chunks,
    _json_text,
)

__all__ = ["EARLY_TOLERANCE", "CeleryOutboxStore"]

#: A task may run this many seconds before the delivery's ``next_attempt_at``
#: (Celery's countdown is computed on another machine's clock).
EARLY_TOLERANCE = 2.0

# PostgreSQL: lock the named rows that are due, skipping rows another worker
# is claiming this instant, lease them and return them with their
# subscriber's current secret, in one statement (the store's claim, picking
# the rows named instead of the oldest).
_NAMED_DUE = "d.id IN ({marks}) AND {{due}}"

# SQLite: the store's claim (writers are serialised, so two workers cannot
# both take one), picking the named due rows. The unary "+" keeps SQLite
# from reading the partial index of pending rows (all of them) for the status
# and time: the primary key finds the few rows named.
_NAMED_DUE_SQLITE = """
    d.id IN (SELECT value FROM json_each(?)) AND +d.status = 'pending'
    AND +d.next_attempt_at <= ? AND (d.static_subscriber OR s.active)"""


class CeleryOutboxStore(DjangoOutboxStore):
    """The outbox store with the Celery workers' claim by ids and the sweeper."""

    def on_commit(self, fun: Callable[[], Any]) -> None:
        """Call ``fun`` when the transaction the outbox rows are in commits
        (at once, outside a transaction)."""
        transaction.on_commit(fun, using=self.using)

    def close(self) -> None:
        """Close this thread's connection (the engine's database thread)."""
        connections[self.using].close()

    # -- a worker's claim --------------------------------------------------------

    def claim_ids(
        self,
        ids: Sequence[str],
        *,
        owner: str,
        lease: float,
        now: datetime.datetime,
        early: float = EARLY_TOLERANCE,
    ) -> list[DeliveryTask]:
        """Lease the deliveries of ``ids`` that are due to ``owner``.

        Due as for :meth:`claim`: pending, ``next_attempt_at`` passed (or
        within ``early`` seconds), not held by a live lease, and the
        subscriber static or active. The others are left alone: finished
        ones, ones scheduled for later (a retry, whose own task will come),
        ones of a disabled subscriber, and ones another worker holds (if it
        dies, its lease runs out and the sweeper publishes them again).
        """
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        connection = self.connection
        if not connection.in_atomic_block:
            # A worker lives long: a connection the database dropped
            # meanwhile (restart, idle timeout) is replaced, not an error.
            connection.close_if_unusable_or_obsolete()
        until = now + datetime.timedelta(seconds=lease)
        due_by = now + datetime.timedelta(seconds=early)
        vendor = connection.vendor
        rows: list[tuple[Any, ...]] = []
        with transaction.atomic(using=self.using):
            for chunk in _chunks(ids, CHUNK_SIZE):
                if vendor == "postgresql":
                    rows.extend(
                        self._claim_ids_postgresql(chunk, owner, until, now, due_by)
                    )
                elif vendor == "sqlite":
                    rows.extend(
                        self._claim_ids_sqlite(chunk, owner, until, now, due_by)
                    )
                else:
                    rows.extend(
                        self._claim_ids_portable(chunk, owner, until, now, due_by)
                    )
        rows.sort(key=lambda row: str(row[0]))
        return self._tasks_of(rows, now)

    def _claim_ids_postgresql(
        self,
        ids: Sequence[str],
        owner: str,
        until: datetime.datetime,
        now: datetime.datetime,
        due_by: datetime.datetime,
    ) -> list[tuple[Any, ...]]:
        sql = self._claim_sql_postgresql(
            _NAMED_DUE.format(marks=", ".join(["%s"] * len(ids)))
        )
        params: list[Any] = [*ids, PENDING, due_by, owner, until, until, now]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def _claim_ids_sqlite(
        self,
        ids: Sequence[str],
        owner: str,
        until: datetime.datetime,
        now: datetime.datetime,
        due_by: datetime.datetime,
    ) -> list[tuple[Any, ...]]:
        return self._claim_picked_sqlite(
            _NAMED_DUE_SQLITE,
            [_json_text(list(ids)), self._time(due_by)],
            owner,
            until,
            now,
        )

    def _claim_ids_portable(
        self,
        ids: Sequence[str],
        owner: str,
        until: datetime.datetime,
        now: datetime.datetime,
        due_by: datetime.datetime,
    ) -> list[tuple[Any, ...]]:
        """Any other database: lock (skipping locked rows where it can), lease."""
        features = self.connection.features
        due = self._due(due_by).filter(pk__in=list(ids))
        if features.has_select_for_update:
            due = due.select_for_update(
                skip_locked=features.has_select_for_update_skip_locked
            )
        found = list(due.values_list("pk", flat=True))
        if not found:
            return []
        deliveries = Delivery.objects.using(self.using)
        # The due condition again: a row leased since the select is not taken.
        deliveries.filter(
            pk__in=found, status=PENDING, next_attempt_at__lte=due_by
        ).update(
            lease_owner=owner, leased_until=until, next_attempt_at=until, updated_at=now
        )
        rows = deliveries.filter(
            pk__in=found, lease_owner=owner, leased_until=until
        ).values_list(*_TASK_FIELDS)
        return [tuple(row) for row in rows]

    # -- the sweeper -------------------------------------------------------------

    def sweepable(self, *, grace: datetime.timedelta, now: datetime.datetime) -> int:
        """How many deliveries :meth:`sweep` would take now."""
        count: int = self._due(now - grace).count()
        return count

    def sweep(
        self,
        *,
        grace: datetime.timedelta,
        now: datetime.datetime,
        limit: int = 1000,
    ) -> list[tuple[str, str, str]]:
        """Deliveries due for longer than ``grace`` that nobody holds.

        Returns up to ``limit`` of them as ``(id, message_id, url)``, oldest
        first, and makes them due ``now``: the next sweep takes them again
        only if ``grace`` passes once more without a worker claiming them.
        A delivery leased by a live worker, or scheduled for later, is not
        due, and never swept.
        """
        if limit < 1:
            raise ValueError("limit must be 1 or more")
        cutoff = now - grace
        features = self.connection.features
        with transaction.atomic(using=self.using):
            due = self._due(cutoff).order_by("next_attempt_at")
            if features.has_select_for_update:
                due = due.select_for_update(
                    skip_locked=features.has_select_for_update_skip_locked
                )
            rows = [
                (str(pk), str(message_id), str(url))
                for pk, message_id, url in due.values_list("pk", "message_id", "url")[
                    :limit
                ]
            ]
            if rows:
                Delivery.objects.using(self.using).filter(
                    pk__in=[row[0] for row in rows],
                    status=PENDING,
                    next_attempt_at__lte=cutoff,
                ).update(next_attempt_at=now, updated_at=now)
        return rows
