"""An in-memory outbox: the engine's test double, with the same lease rules."""

from __future__ import annotations

import dataclasses
import datetime
import heapq
import itertools
import threading
from collections.abc import Sequence
from typing import Any

from .store import AttemptResult, DeliveryTask

__all__ = ["MemoryStore"]

_PENDING = "pending"


@dataclasses.dataclass(slots=True)
class _Row:
    task: DeliveryTask
    next_attempt_at: datetime.datetime
    state: str = _PENDING  # pending, succeeded, failed, gone
    attempts: int = 0
    owner: str | None = None
    lease_until: datetime.datetime | None = None
    version: int = 0

    def due_at(self) -> datetime.datetime:
        """When the row may be claimed next (if pending)."""
        lease = self.lease_until
        when = self.next_attempt_at
        return lease if lease is not None and lease > when else when


class MemoryStore:
    """An :class:`~thorn.engine.store.OutboxStore` kept in a dict.

    For tests and small programs: nothing survives the process. Safe to use
    from the engine's database thread and the test's thread at once.

    Rules, as the protocol says: a delivery is *due* when it is pending, its
    ``next_attempt_at`` has come, and no live lease holds it (an expired
    lease does not). :meth:`record` applies a result only while the
    recording owner still holds the lease; a result from an owner whose
    lease ran out and was taken by another is kept in :attr:`attempts` (the
    request was made) but changes nothing. A ``gone`` result disables the
    subscriber (``subscriber_key``): its other deliveries stay pending and
    are not claimed.
    """

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        #: Every recorded attempt, in order.
        self.attempts: list[AttemptResult] = []
        #: Keys of subscribers a ``gone`` answer disabled.
        self.disabled: set[Any] = set()
        #: How many times :meth:`claim` handed out each delivery.
        self.claims: dict[str, int] = {}
        # (due, seq, id, version): one entry per change of a pending row;
        # entries whose version is not the row's are stale and skipped.
        self._heap: list[tuple[datetime.datetime, int, str, int]] = []
        self._seq = itertools.count()

    def _schedule(self, row: _Row) -> None:
        row.version += 1
        if row.state == _PENDING:
            entry = (row.due_at(), next(self._seq), row.task.id, row.version)
            heapq.heappush(self._heap, entry)

    def add(
        self, task: DeliveryTask, *, next_attempt_at: datetime.datetime | None = None
    ) -> None:
        """Put ``task`` in the outbox, due at ``next_attempt_at`` (default: now)."""
        when = next_attempt_at or datetime.datetime.now(datetime.UTC)
        with self._lock:
            if task.id in self._rows:
                raise ValueError(f"delivery {task.id} is already in the store")
            row = self._rows[task.id] = _Row(task, when, attempts=task.attempts)
            self._schedule(row)

    # -- OutboxStore ------------------------------------------------------

    def claim(
        self, *, owner: str, limit: int, lease: float, now: datetime.datetime
    ) -> list[DeliveryTask]:
        until = now + datetime.timedelta(seconds=lease)
        claimed: list[DeliveryTask] = []
        with self._lock:
            heap = self._heap
            while heap and len(claimed) < limit and heap[0][0] <= now:
                _, _, delivery_id, version = heapq.heappop(heap)
                row = self._rows[delivery_id]
                if row.version != version or row.state != _PENDING:
                    continue  # stale entry: the row changed since
                if row.task.subscriber_key in self.disabled:
                    continue  # stays pending, never claimed
                row.owner = owner
                row.lease_until = until
                self._schedule(row)  # claimable again when the lease ends
                self.claims[delivery_id] = self.claims.get(delivery_id, 0) + 1
                task = row.task
                if task.attempts != row.attempts:
                    task = dataclasses.replace(task, attempts=row.attempts)
                claimed.append(task)
        return claimed

    def record(
        self, results: Sequence[AttemptResult], *, owner: str, now: datetime.datetime
    ) -> None:
        with self._lock:
            for result in results:
                self.attempts.append(result)
                row = self._rows.get(result.delivery_id)
                if row is None or row.owner != owner or row.state != _PENDING:
                    continue
                row.attempts += 1
                row.owner = None
                row.lease_until = None
                if result.outcome == "retry":
                    row.next_attempt_at = result.next_attempt_at or now
                else:
                    row.state = result.outcome
                    if result.outcome == "gone":
                        self.disabled.add(row.task.subscriber_key)
                self._schedule(row)

    def release(self, delivery_ids: Sequence[str], *, owner: str) -> None:
        with self._lock:
            for delivery_id in delivery_ids:
                row = self._rows.get(delivery_id)
                if row is not None and row.owner == owner:
                    row.owner = None
                    row.lease_until = None
                    self._schedule(row)

    def backlog(self, *, now: datetime.datetime) -> int:
        with self._lock:
            return sum(
                1
                for row in self._rows.values()
                if row.state == _PENDING
                and row.next_attempt_at <= now
                and (row.lease_until is None or row.lease_until <= now)
            )

    # -- inspection ---------------------------------------------------------

    def state(self, delivery_id: str) -> str:
        """``pending``, ``succeeded``, ``failed`` or ``gone``."""
        with self._lock:
            return self._rows[delivery_id].state

    def next_attempt_at(self, delivery_id: str) -> datetime.datetime:
        with self._lock:
            return self._rows[delivery_id].next_attempt_at

    def leased_by(self, delivery_id: str) -> str | None:
        """The owner of a live-or-expired lease on the delivery, if any."""
        with self._lock:
            return self._rows[delivery_id].owner

    def attempts_of(self, delivery_id: str) -> list[AttemptResult]:
        with self._lock:
            return [a for a in self.attempts if a.delivery_id == delivery_id]

    def states(self) -> dict[str, int]:
        """How many deliveries are in each state."""
        counts: dict[str, int] = {}
        with self._lock:
            for row in self._rows.values():
                counts[row.state] = counts.get(row.state, 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self._rows)
