"""The dispatcher base: find subscribers, build requests, buffer, hand over."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..exceptions import BufferNotEmpty
from ..request import Request
from ..retry import RetryPolicy
from ..subscribers import iter_subscribers as _iter_subscribers
from ..subscribers import matches_pattern, static_subscribers, user_ident

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)


class _BufferState(threading.local):
    def __init__(self) -> None:
        self.owner: object | None = None
        self.items: list[Request] = []


_ANONYMOUS = object()


class Dispatcher:
    """Base dispatcher: subclasses decide how requests reach the network.

    Lifecycle hooks (``before_send``, ``after_send``, ``on_request_done``)
    are no-op methods to override, not flags in the send path.
    """

    app: Any = None

    def __init__(
        self, timeout: float | None = None, app: Any = None, buffer: bool = False
    ) -> None:
        from ..app import app_or_default

        self.app = app_or_default(app or self.app)
        self.timeout = timeout
        self._buffer = _BufferState()
        if buffer:
            self.enable_buffer()

    # -- hooks -------------------------------------------------------------

    def before_send(self, event: str, payload: Any, sender: Any) -> None:
        """Called once per ``send`` before subscribers are looked up."""

    def after_send(self, event: str, requests: Sequence[Request]) -> None:
        """Called once per ``send`` with the requests made (or buffered)."""

    # -- sending -----------------------------------------------------------

    def send(
        self,
        event: str,
        payload: Any,
        sender: Any,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Request]:
        """Send ``payload`` to every subscriber of ``event``.

        Every request body is encoded (and checked against the size limit)
        before anything is sent: a payload that cannot be encoded raises and
        nothing goes out.
        """
        self.before_send(event, payload, sender)
        requests = self.prepare_requests(
            event, payload, sender, timeout=timeout, context=context, **kwargs
        )
        if self._buffer.owner is not None:
            self._buffer.items.extend(requests)
        elif requests:
            self.dispatch_requests(requests)
        self.after_send(event, requests)
        return requests

    def prepare_requests(
        self,
        event: str,
        payload: Any,
        sender: Any,
        *,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        on_success: Callable[..., Any] | None = None,
        on_error: Callable[..., Any] | None = None,
        on_timeout: Callable[..., Any] | None = None,
        extra_subscribers: Any = None,
        recipient_validators: Sequence[Callable[..., Any]] | None = None,
        policy: RetryPolicy | None = None,
        allow_keepalive: bool = True,
        headers: Mapping[str, Any] | None = None,
    ) -> list[Request]:
        app = self.app
        settings = app.settings
        subscribers = self.subscribers_for_event(
            event, sender=sender, context=context, extra_subscribers=extra_subscribers
        )
        if not subscribers:
            return []
        subscribers = [s for s in subscribers if self._passes_filters(s, payload)]
        if timeout is None:
            timeout = (
                self.timeout
                if self.timeout is not None
                else settings.THORN_EVENT_TIMEOUT
            )
        if policy is None:
            policy = RetryPolicy.from_settings(settings)
        if recipient_validators is None:
            recipient_validators = app.recipient_validators
        validators = tuple(recipient_validators)
        cache: dict[str, bytes] = {}
        signer = app.signer
        sender_ident = user_ident(sender)
        request_cls = app.Request
        user_agent = settings.THORN_USER_AGENT
        requests = []
        for sub in subscribers:
            body = self.encode_cached(
                payload, cache, getattr(sub, "content_type", None)
            )
            requests.append(
                request_cls(
                    event,
                    payload,
                    sender_ident,
                    sub,
                    on_success=on_success,
                    on_error=on_error,
                    on_timeout=on_timeout,
                    timeout=timeout,
                    recipient_validators=validators,
                    allow_keepalive=allow_keepalive,
                    headers=headers,
                    user_agent=user_agent,
                    body=body,
                    policy=policy,
                    signer=signer,
                    app=app,
                )
            )
        return requests

    @staticmethod
    def _passes_filters(subscriber: Any, payload: Any) -> bool:
        filters = getattr(subscriber, "filters", None)
        if filters is None:
            return True
        try:
            return bool(filters(payload))
        except Exception:
            logger.exception(
                "payload filter of subscription %s raised; not delivering to it",
                getattr(subscriber, "uuid", "?"),
            )
            return False

    def encode_payload(self, data: Any, content_type: str | None) -> bytes:
        body: bytes = self.app.codecs.encode(
            data,
            content_type or "application/json",
            max_size=self.app.settings.THORN_PAYLOAD_MAX_SIZE,
        )
        return body

    def encode_cached(
        self, payload: Any, cache: dict[str, bytes], ctype: str | None
    ) -> bytes:
        key = ctype or "application/json"
        try:
            return cache[key]
        except KeyError:
            body: bytes = self.encode_payload(payload, key)
            cache[key] = body
            return body

    def subscribers_for_event(
        self,
        name: str,
        sender: Any = None,
        context: Mapping[str, Any] | None = None,
        extra_subscribers: Any = None,
    ) -> list[Any]:
        """Subscribers of event ``name`` (optionally filtered by sender)."""
        context = context or {}
        found: list[Any] = []
        if extra_subscribers:
            found.extend(
                _iter_subscribers(
                    extra_subscribers, name, sender=sender, context=context
                )
            )
        found.extend(
            static_subscribers(
                self.app.settings.THORN_SUBSCRIBERS,
                name,
                sender=sender,
                context=context,
            )
        )
        found.extend(self.app.env.subscribers_for(name, sender=sender, app=self.app))
        ident = user_ident(sender)
        out = []
        seen: set[Any] = set()
        for sub in found:
            if not getattr(sub, "active", True):
                continue
            if not matches_pattern(sub.event, name):
                continue
            owner = sub.user_ident() if hasattr(sub, "user_ident") else None
            if owner is not None and owner != ident:
                continue
            key = (getattr(sub, "uuid", None) or id(sub), sub.url)
            if key in seen:
                continue
            seen.add(key)
            out.append(sub)
        return out

    def dispatch_requests(self, requests: Sequence[Request]) -> None:
        """Deliver ``requests`` (subclasses decide how)."""
        for request in requests:
            self.dispatch_request(request)

    def dispatch_request(self, request: Request) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} must implement dispatch_request "
            "or dispatch_requests"
        )

    # -- buffering -----------------------------------------------------------

    @property
    def buffering(self) -> bool:
        return self._buffer.owner is not None

    def enable_buffer(self, owner: object | None = None) -> None:
        """Start buffering; nested calls by other owners leave the first in charge."""
        if self._buffer.owner is None:
            self._buffer.owner = owner if owner is not None else _ANONYMOUS

    def flush_buffer(self, owner: object | None = None) -> None:
        """Send buffered requests; a flush by a nested owner waits for the outer one."""
        state = self._buffer
        if owner is not None and state.owner is not None and owner is not state.owner:
            return
        items, state.items = state.items, []
        if items:
            self.dispatch_requests(items)

    def disable_buffer(self, owner: object | None = None) -> None:
        """Stop buffering. Raises BufferNotEmpty if events are still buffered."""
        state = self._buffer
        if owner is not None and state.owner is not None and owner is not state.owner:
            return
        if state.items:
            raise BufferNotEmpty(
                f"{len(state.items)} buffered requests were not sent: "
                "call flush_buffer() before disable_buffer()"
            )
        state.owner = None

    def buffered(self) -> list[Request]:
        return list(self._buffer.items)

    def close(self) -> None:
        """Release resources (connections, threads)."""

    @staticmethod
    def iter_subscribers(spec: Any, name: str, **kwargs: Any) -> Iterable[Any]:
        return _iter_subscribers(spec, name, **kwargs)
