"""When to try a webhook again, and how long to wait before it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .exceptions import (
    BadStatus,
    ConnectionFailed,
    DeliveryError,
    DeliveryTimeout,
    ResponseTooLarge,
)

__all__ = ["RetryPolicy", "is_retryable"]

#: Answers that say "do not send this again": 410 Gone (the endpoint is
#: gone for good, RFC 9110 section 15.5.11).
NEVER_RETRY_STATUS = frozenset({410})


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed attempt may succeed if tried again.

    Timeouts, connection failures and non-2xx answers are retried, as the
    manual says (a 500 "or even a 404"), except 410 Gone. Refusals by the
    recipient validators and bad payloads are never retried: they would be
    refused again.
    """
    if isinstance(exc, BadStatus):
        status = exc.response.status if exc.response is not None else 0
        return status not in NEVER_RETRY_STATUS
    return isinstance(exc, (DeliveryTimeout, ConnectionFailed, ResponseTooLarge))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries with capped exponential backoff and jitter.

    ``delay`` is the manual's ``retry_delay``: the wait before the first
    retry. With ``backoff`` each next wait doubles (or multiplies by
    ``backoff`` when it is a number), capped at ``backoff_max``. With
    ``jitter`` each wait is drawn between half and all of that value, so
    many failures at once do not come back at once. A ``Retry-After`` from
    the receiver replaces the computed wait (capped at ``backoff_max``).
    """

    retry: bool = True
    max_retries: int = 10
    delay: float = 60.0
    backoff: bool | float = True
    backoff_max: float = 3600.0
    jitter: bool = True
    #: A fixed ladder of waits (seconds): wait ``schedule[n]`` before retry
    #: ``n + 1``; when given, ``max_retries`` is its length and ``delay`` /
    #: ``backoff`` are not used. ``Retry-After`` and jitter still apply.
    schedule: tuple[float, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> RetryPolicy:
        """Build from ``THORN_RETRY*`` settings; ``None`` overrides are ignored."""
        values: dict[str, Any] = {
            "retry": settings.THORN_RETRY,
            "max_retries": settings.THORN_RETRY_MAX,
            "delay": settings.THORN_RETRY_DELAY,
            "backoff": settings.THORN_RETRY_BACKOFF,
            "backoff_max": settings.THORN_RETRY_BACKOFF_MAX,
            "jitter": settings.THORN_RETRY_JITTER,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def ladder_from_settings(cls, settings: Any, **overrides: Any) -> RetryPolicy:
        """The durable dispatcher's policy: ``THORN_RETRY_SCHEDULE``...

        ...unless the manual's ``THORN_RETRY_DELAY`` / ``THORN_RETRY_MAX`` are
        set, or the event gives ``delay`` / ``max_retries``: then those, with
        backoff, as :meth:`from_settings` builds them.
        """
        explicit = settings.is_set("THORN_RETRY_DELAY") or settings.is_set(
            "THORN_RETRY_MAX"
        )
        if (
            explicit
            or overrides.get("delay") is not None
            or overrides.get("max_retries") is not None
        ):
            return cls.from_settings(settings, **overrides)
        schedule = tuple(float(x) for x in settings.THORN_RETRY_SCHEDULE)
        base = cls.from_settings(settings, retry=overrides.get("retry"))
        return cls(
            retry=base.retry,
            max_retries=len(schedule),
            delay=schedule[0] if schedule else base.delay,
            backoff=False,
            backoff_max=max(base.backoff_max, max(schedule, default=0.0)),
            jitter=base.jitter,
            schedule=schedule,
        )

    def should_retry(self, retries_done: int, exc: BaseException) -> bool:
        """True if one more try is allowed after ``retries_done`` retries."""
        return self.retry and retries_done < self.max_retries and is_retryable(exc)

    def delay_for(
        self, retries_done: int, *, retry_after: float | None = None
    ) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        if self.schedule is not None:
            if not self.schedule:
                return 0.0
            wait = float(self.schedule[min(retries_done, len(self.schedule) - 1)])
            return wait * random.uniform(0.5, 1.0) if self.jitter else wait
        wait = float(self.delay)
        if self.backoff:
            factor = 2.0 if self.backoff is True else float(self.backoff)
            wait = min(wait * factor**retries_done, self.backoff_max)
        if self.jitter:
            wait *= random.uniform(0.5, 1.0)
        return wait

    def to_dict(self) -> dict[str, Any]:
        return {
            "retry": self.retry,
            "max_retries": self.max_retries,
            "delay": self.delay,
            "backoff": self.backoff,
            "backoff_max": self.backoff_max,
            "jitter": self.jitter,
            "schedule": list(self.schedule) if self.schedule is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        values = dict(data)
        if values.get("schedule") is not None:
            values["schedule"] = tuple(values["schedule"])
        return cls(**values)


def retry_after_of(exc: BaseException) -> float | None:
    """The ``Retry-After`` of the answer behind ``exc``, if there is one."""
    if isinstance(exc, DeliveryError) and exc.response is not None:
        value: float | None = exc.response.retry_after()
        return value
    return None
