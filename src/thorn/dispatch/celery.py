"""The Celery dispatcher: workers on a broker post the requests.

``THORN_DISPATCHER = "celery"``. ``send()`` finds the subscribers and
encodes the payload in the calling process (so a bad payload raises there,
and the subscribers are the ones every other dispatcher would use), then
hands the requests to Celery workers in task messages
(:func:`thorn.tasks.dispatch_requests`):

* a message carries the requests of up to ``THORN_CHUNKSIZE`` events: a
  flushed buffer of 100 events goes in 10 messages (the manual's buffering
  section); an event with more than :attr:`CeleryDispatcher.max_requests_per_message`
  subscribers is split so that several workers share it;
* the requests of a message are sorted by URL (scheme, host, port), so a
  worker posts those to one host back to back on kept-alive connections.

Two modes (see docs/celery.md):

* **outbox** (Django with ``thorn.django`` installed, or
  ``THORN_CELERY_OUTBOX = True``): ``send()`` writes the message and its
  deliveries in the caller's transaction, exactly as the outbox dispatcher
  does, and publishes their **ids** when the transaction commits. The
  tables stay the truth: workers lease the ids, post, record every attempt
  and retry on the durable ladder; a sweeper publishes again what no
  worker finished. Secrets stay in the database.
* **no database**: the message carries each request as JSON (URL, encoded
  body, headers, and the subscriber's secret, which the worker needs to
  sign: use a private broker). Celery's retry with the request's retry
  policy applies; the broker is the only copy.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from ..engine.store import DeliveryTask
from ..exceptions import ImproperlyConfigured
from ..request import RESERVED_HEADERS, Request
from ..retry import RetryPolicy
from .outbox import OutboxDispatcher

try:
    import celery  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - celery is installed in tests
    raise ImportError(
        "THORN_DISPATCHER='celery' needs Celery: pip install 'thorn[celery]'"
    ) from exc

__all__ = [
    "CeleryDispatcher",
    "Dispatcher",
    "WorkerDispatcher",
    "chunk_size",
    "group_chunks",
    "request_to_wire",
    "requests_to_wire",
    "resolve_wire",
    "split_requests",
    "task_from_wire",
    "tasks_from_wire",
    "uses_outbox",
    "wire_with_body",
]

logger = logging.getLogger(__name__)

#: The keys a request carries in a message without a database.
WIRE_KEYS = frozenset(
    {
        "id",
        "message_id",
        "event",
        "url",
        "body",
        "body_b64",
        "like",
        "content_type",
        "subscription",
        "hmac_secret",
        "hmac_digest",
        "extra_secrets",
        "headers",
        "timeout",
        "policy",
        "attempts",
    }
)


def chunk_size(settings: Any) -> int:
    """``THORN_CHUNKSIZE``, checked: events per task message."""
    value = settings.THORN_CHUNKSIZE
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"THORN_CHUNKSIZE must be a whole number of events per task message, "
            f"1 or more (the default is 10), not {value!r}"
        )
    return value


def uses_outbox(app: Any) -> bool:
    """Whether the outbox's tables are the truth (``THORN_CELERY_OUTBOX``).

    ``None`` (the default) means: when the app runs under Django with
    ``thorn.django`` installed.
    """
    setting = app.settings.THORN_CELERY_OUTBOX
    django = getattr(app.env, "name", "") == "django"
    if setting is None:
        if not django:
            return False
        from django.apps import apps

        return apps.is_installed("thorn.django")
    if setting and not django:
        raise ImproperlyConfigured(
            "THORN_CELERY_OUTBOX=True needs Django with 'thorn.django' in "
            "INSTALLED_APPS (the outbox's tables); set it to None or False "
            "to send requests through the broker without a database"
        )
    return bool(setting)


# -- the message form of a request (no database) --------------------------------------


def request_to_wire(request: Request) -> dict[str, Any]:
    """A request as plain JSON for a task message: what the worker posts.

    The body travels encoded (text when it is UTF-8, else base64 under
    ``body_b64``), with the subscriber's secret: the worker signs.
    """
    body = request.body
    if body is None:
        body = request._encoded_body()
    sub = request.subscriber
    item: dict[str, Any] = {
        "id": request.id,
        "message_id": getattr(request, "message_id", None) or request.id,
        "event": request.event,
        "url": str(sub.url),
        "content_type": request.content_type,
        "subscription": request.subscription,
        "hmac_secret": getattr(sub, "hmac_secret", None) or None,
        "hmac_digest": getattr(sub, "hmac_digest", None) or "sha256",
        # Thorn's own headers are made afresh by the worker; the rest (and
        # the User-Agent) travel.
        "headers": [
            [name, value]
            for name, value in request.default_headers
            if name.lower() not in RESERVED_HEADERS
        ],
        "timeout": request.timeout,
        "policy": request.policy.to_dict(),
        "attempts": request.retries,
    }
    _put_body(item, body)
    extra = tuple(getattr(sub, "extra_secrets", ()) or ())
    if extra:
        item["extra_secrets"] = list(extra)
    return item


def _put_body(item: dict[str, Any], body: bytes) -> None:
    try:
        item["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        item["body_b64"] = base64.b64encode(body).decode("ascii")


def requests_to_wire(requests: Sequence[Request]) -> list[dict[str, Any]]:
    """The requests of one message, each written as a difference.

    The requests of a message share most of what they carry (event, body,
    policy, headers): a request gives ``"like": n`` and only the keys in
    which it differs from request ``n`` of the same message (the first of
    its send, else the first of the message). A message is read back whole
    with :func:`resolve_wire`.
    """
    items: list[dict[str, Any]] = []
    full: list[dict[str, Any]] = []
    first_of_send: dict[Any, int] = {}
    for index, request in enumerate(requests):
        item = request_to_wire(request)
        full.append(item)
        like = first_of_send.setdefault(item["message_id"], index)
        if like == index and index:
            like = 0
        if like == index:
            items.append(item)
            continue
        base = full[like]
        diff: dict[str, Any] = {"like": like}
        for key, value in item.items():
            if base.get(key) != value:
                diff[key] = value
        for key in base.keys() - item.keys():
            if key not in _BODY_KEYS:
                diff[key] = [] if key == "extra_secrets" else None
        items.append(diff)
    return items


_BODY_KEYS = frozenset({"body", "body_b64"})


def resolve_wire(items: Sequence[Any]) -> list[Any]:
    """The requests of a message, each whole (``like`` applied).

    Raises:
        ValueError: a ``like`` that is not the index of an earlier request.
    """
    out: list[Any] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or "like" not in item:
            out.append(item)
            continue
        like = item["like"]
        if type(like) is not int or not 0 <= like < index:
            raise ValueError(
                f"request {index} of the message: 'like' must be the index "
                "of an earlier request"
            )
        base = out[like]
        if not isinstance(base, Mapping):
            raise ValueError(f"request {index} of the message: 'like' a non-request")
        whole = {**base, **item}
        del whole["like"]
        if "body" in item:
            whole.pop("body_b64", None)
        elif "body_b64" in item:
            whole.pop("body", None)
        out.append(whole)
    return out


def wire_with_body(
    item: Mapping[str, Any], body: bytes, **changes: Any
) -> dict[str, Any]:
    """A whole request (see :func:`resolve_wire`) standing alone, with ``changes``."""
    out = {k: v for k, v in item.items() if k not in _BODY_KEYS and k != "like"}
    _put_body(out, body)
    out.update(changes)
    return out


def _text(item: Mapping[str, Any], key: str, where: str, *, empty: bool) -> str:
    value = item.get(key)
    if type(value) is not str or (not empty and not value):
        raise ValueError(
            f"{where}: {key!r} must be a{' non-empty' * (not empty)} "
            f"string, not {type(value).__name__}"
        )
    return value


# Retry policies already checked, by their items (a message repeats a few).
_POLICIES: dict[tuple[Any, ...], bool] = {}


def _check_policy(policy: Any, where: str) -> dict[str, Any]:
    if not isinstance(policy, Mapping):
        raise ValueError(f"{where}: 'policy' must be an object")
    try:
        key = tuple(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in policy.items()
        )
        if key in _POLICIES:
            return dict(policy)
    except TypeError:  # an unhashable value: checked below, not cached
        key = None
    try:
        RetryPolicy.from_dict(dict(policy))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: 'policy' is not a retry policy ({exc})") from None
    if key is not None:
        if len(_POLICIES) > 1024:
            _POLICIES.clear()
        _POLICIES[key] = True
    return dict(policy)


def _check_headers(headers: Any, where: str) -> tuple[tuple[str, str], ...]:
    if type(headers) is not list:
        raise ValueError(f"{where}: 'headers' must be a list of [name, value] pairs")
    out = []
    for pair in headers:
        if (
            type(pair) is not list
            or len(pair) != 2
            or type(pair[0]) is not str
            or type(pair[1]) is not str
        ):
            raise ValueError(
                f"{where}: 'headers' must be a list of [name, value] pairs"
            )
        out.append((pair[0], pair[1]))
    return tuple(out)


def task_from_wire(item: Any, *, where: str = "request") -> DeliveryTask:
    """The engine's task for one whole request of a message.

    Raises:
        ValueError: naming the key, when the item is not a request made by
            :func:`request_to_wire` (the message is refused, not retried).
    """
    if not isinstance(item, Mapping):
        raise ValueError(
            f"{where} is a {type(item).__name__}: a message carries delivery "
            "ids (text) or requests (JSON objects)"
        )
    if not WIRE_KEYS.issuperset(item):
        unknown = sorted(map(str, set(item) - WIRE_KEYS))
        raise ValueError(f"{where}: unknown keys {', '.join(map(repr, unknown))}")
    delivery_id = _text(item, "id", where, empty=False)
    if "like" in item:
        raise ValueError(f"{where}: 'like' is read by resolve_wire")
    if "body_b64" in item:
        try:
            body = base64.b64decode(
                _text(item, "body_b64", where, empty=True), validate=True
            )
        except binascii.Error:
            raise ValueError(f"{where}: 'body_b64' is not base64") from None
    else:
        body = _text(item, "body", where, empty=True).encode("utf-8")
    headers = _check_headers(item.get("headers") or [], where)
    policy = _check_policy(item.get("policy") or {}, where)
    attempts = item.get("attempts", 0)
    timeout = item.get("timeout", 3.0)
    if type(attempts) is not int or attempts < 0:
        raise ValueError(f"{where}: 'attempts' must be a whole number, 0 or more")
    if type(timeout) not in (int, float) or timeout <= 0:
        raise ValueError(f"{where}: 'timeout' must be a positive number of seconds")
    extra = item.get("extra_secrets") or []
    if type(extra) is not list or not all(type(s) is str for s in extra):
        raise ValueError(f"{where}: 'extra_secrets' must be a list of strings")
    secret = item.get("hmac_secret")
    if secret is not None and type(secret) is not str:
        raise ValueError(f"{where}: 'hmac_secret' must be a string or null")
    return DeliveryTask(
        id=delivery_id,
        message_id=str(item.get("message_id") or delivery_id),
        event=_text(item, "event", where, empty=False),
        url=_text(item, "url", where, empty=False),
        body=body,
        content_type=str(item.get("content_type") or "application/json"),
        subscription=str(item.get("subscription") or ""),
        hmac_secret=secret or None,
        hmac_digest=str(item.get("hmac_digest") or "sha256"),
        attempts=attempts,
        extra_secrets=tuple(extra),
        headers=headers,
        timeout=float(timeout),
        policy=policy,
    )


def tasks_from_wire(items: Sequence[Any]) -> list[DeliveryTask]:
    """The engine's tasks for the requests of one message (``like`` applied)."""
    return [
        task_from_wire(item, where=f"request {index} of the message")
        for index, item in enumerate(resolve_wire(items))
    ]


# -- grouping requests into messages ------------------------------------------------

T = TypeVar("T")


def group_chunks(
    items: Sequence[T],
    *,
    group_of: Callable[[T], Hashable],
    order_of: Callable[[T], Any],
    events: int,
    max_requests: int,
) -> list[list[T]]:
    """``items`` in task messages: up to ``events`` groups (sends) per
    message, never more than ``max_requests`` items, each message sorted by
    ``order_of`` (the URL). A group larger than ``max_requests`` is split."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    chunks: list[list[T]] = []
    current: list[T] = []
    count = 0
    for group in groups.values():
        for start in range(0, len(group), max_requests):
            part = group[start : start + max_requests]
            if current and (count >= events or len(current) + len(part) > max_requests):
                chunks.append(current)
                current, count = [], 0
            current.extend(part)
            count += 1
    if current:
        chunks.append(current)
    for chunk in chunks:
        chunk.sort(key=order_of)
    return chunks


def _send_of(request: Request) -> Hashable:
    # The dispatcher gives the requests of one send one message id; requests
    # made otherwise are grouped by event and payload.
    return getattr(request, "message_id", None) or (request.event, id(request.data))


def _url_order(request: Request) -> tuple[Any, ...]:
    return (*request.urlident, str(request.subscriber.url))


def split_requests(
    requests: Sequence[Request], *, events: int, max_requests: int
) -> list[list[Request]]:
    """Requests in task messages (see :func:`group_chunks`): by send, sorted
    by URL (scheme, host, port), so keep-alive helps."""
    return group_chunks(
        requests,
        group_of=_send_of,
        order_of=_url_order,
        events=events,
        max_requests=max_requests,
    )


# -- the dispatchers ----------------------------------------------------------------


class CeleryDispatcher(OutboxDispatcher):
    """Dispatcher using Celery tasks to dispatch events (see module docs).

    Callbacks given to ``send()`` (``on_success``, ``on_error``,
    ``on_timeout``) do not travel to the workers and are not called; the
    workers send Thorn's delivery signals instead.
    """

    #: Most requests one task message carries: an event with more
    #: subscribers is split over several messages (and workers).
    max_requests_per_message = 1000

    @property
    def uses_outbox(self) -> bool:
        """Whether deliveries are written to the outbox (``THORN_CELERY_OUTBOX``)."""
        return bool(
            self.app.settings.derived(
                "THORN_CELERY_OUTBOX:mode", lambda: uses_outbox(self.app)
            )
        )

    @property
    def transactional(self) -> bool:  # type: ignore[override]
        """Outbox mode writes in the caller's transaction (model events need
        not wait for the commit); without a database nothing is written."""
        return self.uses_outbox

    def policy_for(self, policy: RetryPolicy | None) -> RetryPolicy | None:
        """Outbox mode: the durable retry ladder (:meth:`durable_policy`);
        without a database, the event's own policy. Either way the requests
        of one send get one message id."""
        return self.durable_policy(policy) if self.uses_outbox else policy

    def split(self, requests: Sequence[Request]) -> list[list[Request]]:
        """``requests`` as task messages (see :func:`split_requests`)."""
        return split_requests(
            requests,
            events=chunk_size(self.app.settings),
            max_requests=self.max_requests_per_message,
        )

    def dispatch_requests(self, requests: Sequence[Request]) -> None:
        """Outbox: write, and publish the ids on commit; else publish requests."""
        if not requests:
            return
        chunks = self.split(requests)
        if self.uses_outbox:
            from ..django.celery_store import CeleryOutboxStore

            store = CeleryOutboxStore(app=self.app)
            store.enqueue(requests)
            ids = [[request.id for request in chunk] for chunk in chunks]
            store.on_commit(functools.partial(self.hand_over_ids, ids))
            return
        self.hand_over(chunks)

    def hand_over(self, chunks: Sequence[list[Request]]) -> None:
        """Without a database: publish the requests, a message per chunk."""
        for chunk in chunks:
            self.publish(requests_to_wire(chunk))

    def hand_over_ids(self, chunks: Sequence[list[str]]) -> None:
        """Outbox mode, once committed: publish the delivery ids."""
        self.publish_ids(chunks)

    def publish(self, items: list[Any], *, countdown: float | None = None) -> None:
        """Send one ``dispatch_requests`` message (ids or requests)."""
        from ..tasks import publish

        publish(items, countdown=countdown)

    def publish_ids(self, chunks: Sequence[list[str]]) -> None:
        """Publish committed deliveries; a failure is left to the sweeper."""
        for index, ids in enumerate(chunks):
            try:
                self.publish(ids)
            except Exception:
                left = sum(len(chunk) for chunk in chunks[index:])
                logger.warning(
                    "could not publish %d committed deliveries to Celery; "
                    "they are safe in the outbox and the sweeper (thorn.tasks."
                    "sweep, manage.py thorn_sweep) publishes them again after "
                    "THORN_CELERY_SWEEP_GRACE",
                    left,
                    exc_info=True,
                )
                return


class WorkerDispatcher(CeleryDispatcher):
    """Dispatcher used by the :func:`thorn.tasks.send_event` task.

    It runs in a worker: it finds the subscribers there, then posts the
    first message's worth of requests in this very task and publishes the
    rest, so a large fan-out is shared with the other workers.
    """

    def hand_over(self, chunks: Sequence[list[Request]]) -> None:
        self._run_and_publish([requests_to_wire(chunk) for chunk in chunks])

    def hand_over_ids(self, chunks: Sequence[list[str]]) -> None:
        self._run_and_publish(chunks)

    def _run_and_publish(self, chunks: Sequence[list[Any]]) -> None:
        from ..tasks import run_here

        for items in chunks[1:]:
            self.publish(items)
        run_here(chunks[0], app=self.app)


#: The name ``THORN_DISPATCHER = "celery"`` resolves to (the manual's).
Dispatcher = CeleryDispatcher
