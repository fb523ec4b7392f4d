"""Test events: one signed POST to one endpoint, now, and what it answered.

A test event is not stored in the outbox and is never retried: the portal
shows its answer at once. It goes through the same recipient validators as
every webhook (an internal address is refused before anything is sent), is
bounded by a short timeout, and each user may send only a few a minute.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError

from ...exceptions import (
    ConnectionFailed,
    DeliveryError,
    DeliveryTimeout,
    RecipientRejected,
    ThornError,
)
from ...request import Request
from ...transport.client import SyncClient
from ...transport.url import InvalidURL

__all__ = [
    "MAX_TIMEOUT",
    "RATE_LIMIT",
    "TestEventResult",
    "allow_test_event",
    "sample_event_name",
    "send_test_event",
]

logger = logging.getLogger(__name__)

#: The longest a test event waits for its answer, in seconds.
MAX_TIMEOUT = 5.0
#: Test events one user may send per minute.
RATE_LIMIT = 5
RATE_WINDOW = 60
#: How much of the answer is kept to show.
EXCERPT_SIZE = 1024


@dataclass(frozen=True, slots=True)
class TestEventResult:
    """What one test event got back."""

    __test__ = False  # not a pytest test class

    event: str
    delivery_id: str
    status: int | None = None
    reason: str = ""
    duration_ms: float | None = None
    excerpt: str = ""
    truncated: bool = False
    error: str = ""
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def sample_event_name(pattern: str) -> str:
    """The event name a test event to ``pattern`` carries (``*`` becomes ``test``)."""
    return ".".join("test" if word == "*" else word for word in pattern.split("."))


def allow_test_event(user_key: Any) -> bool:
    """Count a test event of this user; False when over :data:`RATE_LIMIT` a minute.

    Counted in Django's default cache (per process with the local-memory
    cache; share it, e.g. Redis, to count across processes).
    """
    key = f"thorn-portal:test-events:{user_key}"
    cache.add(key, 0, timeout=RATE_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=RATE_WINDOW)
        count = 1
    return int(count) <= RATE_LIMIT


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def send_test_event(subscriber: Any, *, app: Any = None) -> TestEventResult:
    """POST a signed test event to ``subscriber``'s URL; return what happened."""
    from ...app import app_or_default

    app = app_or_default(app)
    timeout = min(float(app.settings.THORN_EVENT_TIMEOUT or MAX_TIMEOUT), MAX_TIMEOUT)
    event = sample_event_name(subscriber.event)
    request = Request(
        event,
        {
            "event": event,
            "ref": None,
            "sender": None,
            "data": {
                "test": True,
                "subscription": str(subscriber.uuid),
                "message": "A test event sent from the webhooks portal.",
            },
        },
        None,
        subscriber,
        timeout=timeout,
        recipient_validators=app.recipient_validators,
        allow_keepalive=False,
        app=app,
        user_agent=app.settings.THORN_USER_AGENT,
    )
    result = TestEventResult(event=event, delivery_id=request.id)
    client = SyncClient(
        resolver=app.resolver,
        ca_bundle=app.settings.THORN_CA_BUNDLE,
        max_response_size=EXCERPT_SIZE,
    )
    started = time.perf_counter()
    try:
        body = request._encoded_body()
        headers = request.default_headers + request.signature_headers(body)
        response = client.post(
            request.url,
            body,
            headers,
            timeout=timeout,
            validators=request.recipient_validators,
            keepalive=False,
        )
    except (RecipientRejected, InvalidURL) as exc:
        return _failed(result, exc, refused=True)
    except DeliveryTimeout:
        return _failed(
            result, f"No answer within {timeout:g} seconds: the test gave up."
        )
    except (ConnectionFailed, DeliveryError) as exc:
        return _failed(result, exc)
    except (ThornError, ValueError) as exc:
        # A user validator, a payload the endpoint's content type cannot carry.
        return _failed(result, exc, refused=True)
    except ValidationError as exc:  # a user validator written for Django
        return _failed(result, " ".join(exc.messages), refused=True)
    finally:
        client.close()
    duration = (time.perf_counter() - started) * 1000
    logger.info(
        "test event %s to subscription %s: %s in %.0f ms",
        request.id,
        subscriber.uuid,
        response.status,
        duration,
    )
    return TestEventResult(
        event=event,
        delivery_id=request.id,
        status=response.status,
        reason=response.reason,
        duration_ms=round(duration, 1),
        excerpt=response.body[:EXCERPT_SIZE].decode("utf-8", "replace"),
        truncated=response.truncated,
    )


def _failed(
    result: TestEventResult, error: BaseException | str, *, refused: bool = False
) -> TestEventResult:
    logger.info("test event %s to a subscription failed: %s", result.delivery_id, error)
    return TestEventResult(
        event=result.event,
        delivery_id=result.delivery_id,
        error=_sentence(str(error)),
        refused=refused,
    )
