"""Lifecycle webhooks of ``manage.py serve``: startup, readiness, liveness.

Each is a Thorn event (``thorn.startup``, ``thorn.readiness``,
``thorn.liveness``) sent to the operator's URL by the default dispatcher,
signed like every Thorn webhook, in an executor so the event loop never
waits for the receiver. A receiver that fails is logged, not retried.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import os
import socket
from typing import Any

from ..events.base import Event
from ..transport.url import parse_url

logger = logging.getLogger("thorn.server")

__all__ = ["LIVENESS", "READINESS", "STARTUP", "LifecycleWebhooks"]

STARTUP = "thorn.startup"
READINESS = "thorn.readiness"
LIVENESS = "thorn.liveness"


def shown_url(url: str | None) -> str:
    """``url`` for logs: no user name, password or query (they may be secrets)."""
    try:
        parsed = parse_url(url or "")
    except ValueError:
        return "<invalid URL>"
    path = parsed.target.split("?", 1)[0]
    return f"{parsed.scheme}://{parsed.host_header}{path}"


class LifecycleWebhooks:
    """Send the lifecycle webhooks to ``url`` (nothing when it is empty).

    Args:
        url: the operator's receiver.
        secret: the HMAC secret to sign with (unsigned without one).
        version: the application's version, sent in every payload.
        allow_internal: skip the recipient validators (the URL may be a
            cluster-internal address); otherwise the app's validators apply.
        app: the Thorn app (default: the current one).
    """

    def __init__(
        self,
        url: str | None,
        *,
        secret: str | None = None,
        version: str = "unknown",
        allow_internal: bool = False,
        app: Any = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url or None
        self.secret = secret or None
        self.version = version
        self.allow_internal = allow_internal
        self.app = app
        self.timeout = timeout
        self._state: dict[str, bool] = {}
        self._pending: set[asyncio.Future[None]] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    def payload(self, kind: str, ok: bool, error: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": kind.rsplit(".", 1)[-1],
            "status": "succeeded" if ok else "failed",
            "version": self.version,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        if error:
            data["error_trace"] = error
        return data

    def send(self, kind: str, ok: bool, error: str | None = None) -> None:
        """Send ``kind`` now, in the executor (call it in the event loop)."""
        if self.url is None:
            return
        self._state[kind] = ok
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="thorn-lifecycle"
            )
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, self._send_now, kind, self.payload(kind, ok, error)
        )
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def changed(self, kind: str, ok: bool, error: str | None = None) -> None:
        """Send ``kind`` if ``ok`` differs from the last state (healthy at first)."""
        if self._state.get(kind, True) != ok:
            self.send(kind, ok, error)
        self._state[kind] = ok

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout``) for the webhooks under way, then close."""
        pending = list(self._pending)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _send_now(self, kind: str, payload: dict[str, Any]) -> None:
        subscriber: dict[str, Any] = {"url": self.url, "event": kind}
        if self.secret:
            subscriber["hmac_secret"] = self.secret
        event = Event(
            kind,
            dispatcher="default",
            retry=False,
            timeout=self.timeout,
            app=self.app,
            subscribers=[subscriber],
            recipient_validators=[] if self.allow_internal else None,
        )

        def on_error(request: Any, exc: BaseException) -> None:
            logger.warning(
                "thorn serve: the %s webhook to %s failed: %s",
                kind,
                shown_url(self.url),
                exc,
            )

        try:
            event._send(kind, payload, None, on_error=on_error, on_timeout=on_error)
        except Exception:
            logger.exception("thorn serve: could not send the %s webhook", kind)
