"""The durable dispatcher: ``send()`` writes to the outbox, an engine delivers.

``send()`` stores one message and one delivery per subscriber in the
caller's database transaction (:meth:`DjangoOutboxStore.enqueue
<thorn.django.store.DjangoOutboxStore.enqueue>`) and posts nothing: the
delivery engine (``manage.py thorn_worker``, or ``manage.py serve``) claims
due deliveries, posts them and retries them on the ``THORN_RETRY_SCHEDULE``
ladder. A rolled-back transaction sends nothing; a committed one is
delivered at least once, even if the process dies the next instant.

Callbacks (``on_success``, ``on_error``, ``on_timeout``) do not travel to
the engine and are not called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..request import Request, new_id
from ..retry import RetryPolicy
from .base import Dispatcher as BaseDispatcher

__all__ = ["Dispatcher", "OutboxDispatcher"]


class OutboxDispatcher(BaseDispatcher):
    """Write requests to the outbox in the caller's transaction (see module docs)."""

    #: Writes in the caller's database transaction: a caller that would
    #: wait for the commit before sending (model events) need not.
    transactional = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: durable_policy's answers, by (settings generation, event policy).
        self._durable: dict[tuple[int, RetryPolicy | None], RetryPolicy] = {}

    def prepare_requests(
        self,
        event: str,
        payload: Any,
        sender: Any,
        *,
        policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> list[Request]:
        requests = super().prepare_requests(
            event, payload, sender, policy=self.policy_for(policy), **kwargs
        )
        # One send, one message: the store groups deliveries by this id.
        message_id = new_id()
        for request in requests:
            request.message_id = message_id  # type: ignore[attr-defined]
        return requests

    def policy_for(self, policy: RetryPolicy | None) -> RetryPolicy | None:
        """The policy the requests of a send get: :meth:`durable_policy`."""
        return self.durable_policy(policy)

    def durable_policy(self, policy: RetryPolicy | None) -> RetryPolicy:
        """The retry ladder (``THORN_RETRY_SCHEDULE``) unless the event chose.

        Events pass a policy built from the settings and their own
        ``retry``, ``retry_max`` and ``retry_delay``; where it differs from
        the settings' own, the event chose, and
        :meth:`RetryPolicy.ladder_from_settings` gets those choices (an
        event's ``retry_delay`` equal to ``THORN_RETRY_DELAY`` cannot be told
        from none). A policy with its own schedule or backoff is kept.

        The answer is kept until a setting changes (it was 14% of a send).
        """
        settings = self.app.settings
        key = (settings.generation, policy)
        kept = self._durable
        found = kept.get(key)
        if found is None:
            if len(kept) >= 64:
                kept.clear()
            found = kept[key] = self._durable_policy(settings, policy)
        return found

    def _durable_policy(self, settings: Any, policy: RetryPolicy | None) -> RetryPolicy:
        if policy is None:
            return RetryPolicy.ladder_from_settings(settings)
        if policy.schedule is not None:
            return policy
        base = RetryPolicy.from_settings(settings)
        if (policy.backoff, policy.backoff_max, policy.jitter) != (
            base.backoff,
            base.backoff_max,
            base.jitter,
        ):
            return policy
        overrides: dict[str, Any] = {}
        if policy.retry != base.retry:
            overrides["retry"] = policy.retry
        if policy.max_retries != base.max_retries:
            overrides["max_retries"] = policy.max_retries
        if policy.delay != base.delay:
            overrides["delay"] = policy.delay
        return RetryPolicy.ladder_from_settings(settings, **overrides)

    def dispatch_request(self, request: Request) -> None:
        self.dispatch_requests([request])

    def dispatch_requests(self, requests: Sequence[Request]) -> None:
        """Store ``requests`` in the outbox; the engine posts them."""
        if not requests:
            return
        from ..django.store import DjangoOutboxStore

        DjangoOutboxStore(app=self.app).enqueue(requests)

    def wait_for_retries(self, timeout: float | None = None) -> bool:
        """Nothing waits in memory: retries are rows in the outbox."""
        return True

    @property
    def pending_retries(self) -> int:
        return 0


#: The name ``THORN_DISPATCHER = "outbox"`` resolves to.
Dispatcher = OutboxDispatcher
