"""Blinker signals for the whole webhook lifecycle.

Connect a receiver to hear about subscriptions and deliveries::

    from thorn import signals

    @signals.delivery_exhausted.connect
    def page_someone(request, **kwargs):
        alert(f"{request.event} to {request.url} failed for good: {kwargs['error']}")

Every signal is sent with :func:`send`, which calls each receiver in turn
and logs (never raises) what a receiver raises: a broken receiver cannot
break delivery. Receivers run in the thread that sends the signal.

Sender and keyword arguments of each signal:

* ``subscription_pre_create`` / ``subscription_post_create``: the
  subscriber, before it is first saved / after it was created;
* ``subscription_pre_update`` / ``subscription_post_update``: the
  subscriber, before / after a change is saved;
* ``subscription_pre_delete`` / ``subscription_post_delete``: the
  subscriber, before / after it is deleted;
* ``message_queued``: the message id, ``deliveries`` (the outbox stored a
  send's deliveries);
* ``delivery_attempted``: the request (or engine task), ``response``,
  ``error``: one HTTP attempt finished, either way;
* ``delivery_succeeded``: the request, ``response``: a 2xx answer;
* ``delivery_failed``: the request, ``error``: an attempt failed (a retry
  may follow);
* ``delivery_exhausted``: the request, ``error``: it failed for good;
* ``subscriber_disabled``: the subscriber, ``reason``;
* ``subscriber_enabled``: the subscriber.

The delivery engine sends the four delivery signals through
:class:`SignalingOutboxStore`: the sender is the
:class:`~thorn.engine.store.DeliveryTask`, and ``result`` (the
:class:`~thorn.engine.store.AttemptResult`) comes with the arguments above.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from blinker import NamedSignal, Namespace

if TYPE_CHECKING:
    from .engine.store import AttemptResult, DeliveryTask, OutboxStore

__all__ = [
    "SignalingOutboxStore",
    "announce_attempt",
    "delivery_attempted",
    "delivery_exhausted",
    "delivery_failed",
    "delivery_succeeded",
    "message_queued",
    "send",
    "subscriber_disabled",
    "subscriber_enabled",
    "subscription_post_create",
    "subscription_post_delete",
    "subscription_post_update",
    "subscription_pre_create",
    "subscription_pre_delete",
    "subscription_pre_update",
]

logger = logging.getLogger(__name__)

thorn_signals = Namespace()

subscription_pre_create = thorn_signals.signal("subscription-pre-create")
subscription_post_create = thorn_signals.signal("subscription-post-create")
subscription_pre_update = thorn_signals.signal("subscription-pre-update")
subscription_post_update = thorn_signals.signal("subscription-post-update")
subscription_pre_delete = thorn_signals.signal("subscription-pre-delete")
subscription_post_delete = thorn_signals.signal("subscription-post-delete")
message_queued = thorn_signals.signal("message-queued")
delivery_attempted = thorn_signals.signal("delivery-attempted")
delivery_succeeded = thorn_signals.signal("delivery-succeeded")
delivery_failed = thorn_signals.signal("delivery-failed")
delivery_exhausted = thorn_signals.signal("delivery-exhausted")
subscriber_disabled = thorn_signals.signal("subscriber-disabled")
subscriber_enabled = thorn_signals.signal("subscriber-enabled")

_DELIVERY_SIGNALS = (
    delivery_attempted,
    delivery_succeeded,
    delivery_failed,
    delivery_exhausted,
)


def send(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal``; a receiver that raises is logged and skipped."""
    if not signal.receivers:
        return  # the common case: nobody listens, and this costs nothing
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception(
                "a receiver of the %r signal raised; delivery goes on", signal.name
            )


def has_delivery_receivers() -> bool:
    """Whether any receiver listens to one of the four delivery signals."""
    return any(signal.receivers for signal in _DELIVERY_SIGNALS)


def announce_attempt(task: DeliveryTask, result: AttemptResult) -> None:
    """Send the delivery signals for one try the engine made and recorded.

    ``response`` is a :class:`~thorn.transport.client.Response` when the
    receiver answered (its status and the first bytes of its body; no
    headers), else None. ``error`` is None for a 2xx answer, else a
    :class:`~thorn.exceptions.DeliveryError` (:class:`BadStatus` when the
    receiver answered) whose message is the recorded error.
    ``delivery_exhausted`` follows ``delivery_failed`` when no try is left
    (outcome ``failed``, or ``gone`` for a 410).
    """
    from .exceptions import BadStatus, DeliveryError
    from .transport.client import Response

    response = None
    if result.status_code is not None:
        response = Response(
            result.status_code,
            "",
            [],
            result.response_excerpt,
            elapsed=result.duration,
        )
    error: DeliveryError | None = None
    if result.outcome != "succeeded":
        message = result.error or "the delivery failed"
        if response is not None:
            error = BadStatus(message, response=response)
        else:
            error = DeliveryError(message)
    send(delivery_attempted, task, response=response, error=error, result=result)
    if error is None:
        send(delivery_succeeded, task, response=response, result=result)
        return
    send(delivery_failed, task, error=error, result=result)
    if result.outcome in ("failed", "gone"):
        send(delivery_exhausted, task, error=error, result=result)


class SignalingOutboxStore:
    """An :class:`~thorn.engine.store.OutboxStore` that announces each try.

    Wrap the store a :class:`~thorn.engine.DeliveryEngine` works on::

        engine = DeliveryEngine(SignalingOutboxStore(DjangoOutboxStore()))

    The engine calls its store in its database thread, so the delivery
    signals are sent there, after the try was recorded (committed): a
    receiver may use the database (Django refuses ORM calls in the event
    loop) and sees the delivery's new state. Claimed tasks are kept only
    while some receiver listens to a delivery signal (receivers connected
    later hear about deliveries claimed after that). Any other attribute is
    the wrapped store's.
    """

    #: At most this many claimed tasks are kept (a task whose lease ran out
    #: before it was posted is neither recorded nor released by this engine).
    max_kept = 65536

    def __init__(self, store: OutboxStore) -> None:
        self.store = store
        self._tasks: dict[str, DeliveryTask] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "store":  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.store, name)

    def claim(
        self, *, owner: str, limit: int, lease: float, now: datetime.datetime
    ) -> list[DeliveryTask]:
        tasks = self.store.claim(owner=owner, limit=limit, lease=lease, now=now)
        if tasks and has_delivery_receivers():
            kept = self._tasks
            for task in tasks:
                kept[task.id] = task
            while len(kept) > self.max_kept:
                del kept[next(iter(kept))]
        return tasks

    def record(
        self,
        results: Sequence[AttemptResult],
        *,
        owner: str,
        now: datetime.datetime,
    ) -> None:
        self.store.record(results, owner=owner, now=now)
        kept = self._tasks
        if not kept:
            return
        for result in results:
            task = kept.pop(result.delivery_id, None)
            if task is not None:
                try:
                    announce_attempt(task, result)
                except Exception:  # building the arguments: never the engine's
                    logger.exception("could not announce a try of %s", task.id)

    def release(self, delivery_ids: Sequence[str], *, owner: str) -> None:
        self.store.release(delivery_ids, owner=owner)
        for delivery_id in delivery_ids:
            self._tasks.pop(delivery_id, None)

    def backlog(self, *, now: datetime.datetime) -> int:
        return self.store.backlog(now=now)
