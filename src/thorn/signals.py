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
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

__all__ = [
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
