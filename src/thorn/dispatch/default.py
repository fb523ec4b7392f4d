"""The default dispatcher: deliver in the calling thread, subscribers concurrently.

``send()`` returns when every subscriber's first attempt has finished. The
posts of one send run concurrently on kept-alive connections (one private
event loop per thread); requests to the same URL keep their order.

Retries do not block the caller: a failed request that may be retried is
handed to one background thread per process, which waits as the retry
policy says (backoff, jitter, ``Retry-After``) and tries again. Those
retries live in memory only: they are lost if the process exits first
(logged), which is why durable installations use the ``outbox`` dispatcher.
Call :meth:`Dispatcher.wait_for_retries` to wait for them (scripts, tests).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Sequence
from typing import Any

from .. import signals
from ..exceptions import DeliveryError, SecurityError
from ..request import Request
from ..retry import retry_after_of
from ..transport.client import AsyncClient, SyncClient, new_event_loop
from .base import Dispatcher as BaseDispatcher

__all__ = ["DefaultDispatcher", "Dispatcher", "RetryScheduler"]

logger = logging.getLogger(__name__)


async def attempt_safely(request: Request, client: AsyncClient) -> BaseException | None:
    """One attempt; the failure, if any, is returned instead of raised."""
    error: BaseException | None = None
    try:
        await request.attempt(client)
    except (DeliveryError, SecurityError, ValueError) as exc:
        error = exc
    except Exception as exc:  # a bug must not stop the other deliveries
        logger.exception("unexpected error delivering %r", request)
        error = exc
    signals.send(
        signals.delivery_attempted, request, response=request.response, error=error
    )
    if error is None:
        signals.send(signals.delivery_succeeded, request, response=request.response)
    else:
        signals.send(signals.delivery_failed, request, error=error)
    return error


async def deliver_batch(
    client: AsyncClient, requests: Sequence[Request]
) -> list[tuple[Request, BaseException | None]]:
    """Attempt every request once: URLs concurrently, each URL in order."""
    if len(requests) == 1:
        request = requests[0]
        return [(request, await attempt_safely(request, client))]
    groups: dict[str, list[Request]] = {}
    for request in requests:
        groups.setdefault(request.subscriber.url, []).append(request)
    results: list[tuple[Request, BaseException | None]] = []

    async def run_group(group: list[Request]) -> None:
        for request in group:
            results.append((request, await attempt_safely(request, client)))

    await asyncio.gather(*(run_group(group) for group in groups.values()))
    return results


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def finish(request: Request, exc: BaseException | None) -> None:
    """Log the final outcome and call the request's callbacks."""
    try:
        if exc is None:
            logger.debug(
                "delivered %s %s to %s", request.event, request.id, request.url
            )
            request.handle_success()
        else:
            logger.warning(
                "giving up on %s %s (subscription %s) after %d retries: %s",
                request.event,
                request.id,
                request.subscription or "-",
                request.retries,
                _describe(exc),
            )
            signals.send(signals.delivery_exhausted, request, error=exc)
            request.handle_failure(exc)
    except Exception:
        logger.exception("a callback of %s %s raised", request.event, request.id)


class RetryScheduler:
    """One background thread with its own loop that retries failed requests."""

    def __init__(self, **client_options: Any) -> None:
        self._options = client_options
        self._lock = threading.Condition()
        self._pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return self._pending

    def _start(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                self._client = AsyncClient(**self._options)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=run, name="thorn-retry", daemon=True)
            self._thread.start()
            ready.wait()
            self._loop = loop
            atexit.register(self._at_exit)
        return self._loop

    def schedule(self, request: Request, delay: float) -> None:
        """Try ``request`` again after ``delay`` seconds (and then per its policy)."""
        with self._lock:
            loop = self._start()
            self._pending += 1
        loop.call_soon_threadsafe(self._spawn, request, delay)

    def _spawn(self, request: Request, delay: float) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._run(request, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, request: Request, delay: float) -> None:
        assert self._client is not None
        try:
            while True:
                await asyncio.sleep(delay)
                request.retries += 1
                exc = await attempt_safely(request, self._client)
                if exc is not None and request.policy.should_retry(
                    request.retries, exc
                ):
                    delay = request.policy.delay_for(
                        request.retries, retry_after=retry_after_of(exc)
                    )
                    logger.info(
                        "retry %d of %s %s failed (%s); next in %.1fs",
                        request.retries,
                        request.event,
                        request.id,
                        _describe(exc),
                        delay,
                    )
                    continue
                finish(request, exc)
                return
        finally:
            with self._lock:
                self._pending -= 1
                self._lock.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no retry is pending; False if ``timeout`` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def _at_exit(self) -> None:
        if self._pending:
            logger.warning(
                "%d webhook retries were still waiting at exit and are lost "
                "(use THORN_DISPATCHER='outbox' for durable delivery)",
                self._pending,
            )

    def stop(self) -> None:
        """Cancel pending retries and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            for task in list(self._tasks):
                task.cancel()
            if self._client is not None:
                await self._client.aclose()
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
        thread.join(5)
        if not thread.is_alive():
            loop.close()
        self._loop = None
        self._thread = None
        with self._lock:
            self._pending = 0
            self._lock.notify_all()


class DefaultDispatcher(BaseDispatcher):
    """Dispatch requests directly in the current process (see module docs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()
        self._clients: list[SyncClient] = []
        self._clients_lock = threading.Lock()
        self._retrier: RetryScheduler | None = None

    def _client_options(self) -> dict[str, Any]:
        settings = self.app.settings
        return {
            "ca_bundle": settings.THORN_CA_BUNDLE,
            "max_response_size": settings.THORN_RESPONSE_MAX_SIZE,
            "max_connections_per_host": settings.THORN_MAX_CONNECTIONS_PER_HOST,
            "max_connections": settings.THORN_MAX_CONNECTIONS,
            "resolver": self.app.resolver,
        }

    @property
    def client(self) -> SyncClient:
        """This thread's client (a private loop with its connection pool)."""
        client: SyncClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = SyncClient(**self._client_options())
            with self._clients_lock:
                self._clients.append(client)
        return client

    @property
    def retrier(self) -> RetryScheduler:
        if self._retrier is None:
            with self._clients_lock:
                if self._retrier is None:
                    self._retrier = RetryScheduler(**self._client_options())
        return self._retrier

    def dispatch_request(self, request: Request) -> None:
        self.dispatch_requests([request])

    def dispatch_requests(self, requests: Sequence[Request]) -> None:
        results = self.client.run(lambda client: deliver_batch(client, requests))
        for request, exc in results:
            if exc is not None and request.policy.should_retry(request.retries, exc):
                delay = request.policy.delay_for(
                    request.retries, retry_after=retry_after_of(exc)
                )
                logger.info(
                    "%s %s to %s failed (%s); retrying in %.1fs",
                    request.event,
                    request.id,
                    request.url,
                    _describe(exc),
                    delay,
                )
                self.retrier.schedule(request, delay)
            else:
                finish(request, exc)

    def wait_for_retries(self, timeout: float | None = None) -> bool:
        """Block until scheduled retries are done; False on timeout."""
        if self._retrier is None:
            return True
        return self._retrier.join(timeout)

    @property
    def pending_retries(self) -> int:
        return 0 if self._retrier is None else self._retrier.pending

    def close(self) -> None:
        if self._retrier is not None:
            self._retrier.stop()
            self._retrier = None
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except RuntimeError:  # the loop belongs to a thread still using it
                logger.debug("could not close a client of another thread")
        self._local = threading.local()


#: The manual's name for the default dispatcher class.
Dispatcher = DefaultDispatcher
