"""The delivery engine's storage plug point: claim due deliveries, record attempts.

The engine is framework-neutral; a store keeps the outbox. Thorn ships a
Django store (``thorn.django.store.DjangoOutboxStore``) and an in-memory one
for tests (``thorn.engine.memory.MemoryStore``). Every method takes ``now``
so tests can drive time without sleeping.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["AttemptResult", "DeliveryTask", "OutboxStore", "Outcome"]

#: What an attempt led to: delivered; try again at ``next_attempt_at``;
#: no more tries (``failed``); or the receiver said 410 Gone (``gone``:
#: failed, and the subscriber is disabled at once).
Outcome = Literal["succeeded", "retry", "failed", "gone"]


# Not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, eight times slower than a plain one, and the engine
# makes two of these per delivery. Treat them as read-only all the same.
@dataclass(slots=True)
class DeliveryTask:
    """One due delivery, as claimed: everything needed to post it (read-only)."""

    id: str  # the delivery id: Hook-Delivery and webhook-id, same on every try
    message_id: str
    event: str
    url: str
    body: bytes  # encoded for content_type
    content_type: str
    subscription: str  # the subscriber's uuid ("" for none)
    hmac_secret: str | None
    hmac_digest: str
    attempts: int  # tries made before this one
    extra_secrets: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 3.0
    policy: dict[str, Any] = field(default_factory=dict)  # RetryPolicy.to_dict()
    subscriber_key: Any = None  # the store's key of the subscriber (auto-disable)


@dataclass(slots=True)
class AttemptResult:
    """The result of one try of one delivery (read-only)."""

    delivery_id: str
    outcome: Outcome
    started_at: datetime.datetime
    duration: float  # seconds
    status_code: int | None = None  # None: no answer (timeout, connection)
    error: str = ""  # short, never a secret or the body
    response_excerpt: bytes = b""  # the first bytes of the answer
    next_attempt_at: datetime.datetime | None = None  # for "retry"
    subscriber_key: Any = None


class OutboxStore(Protocol):
    """What the engine needs from the outbox."""

    def claim(
        self, *, owner: str, limit: int, lease: float, now: datetime.datetime
    ) -> list[DeliveryTask]:
        """Lease up to ``limit`` due deliveries to ``owner`` for ``lease`` seconds.

        Due: pending, ``next_attempt_at <= now``, and not leased (or the lease
        expired). Never returns a delivery another owner holds a live lease on.
        """
        ...

    def record(
        self, results: Sequence[AttemptResult], *, owner: str, now: datetime.datetime
    ) -> None:
        """Store attempts and new states in one transaction; drop the leases."""
        ...

    def release(self, delivery_ids: Sequence[str], *, owner: str) -> None:
        """Give leased deliveries back untried (shutdown)."""
        ...

    def backlog(self, *, now: datetime.datetime) -> int:
        """How many deliveries are due now."""
        ...
