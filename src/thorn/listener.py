"""A small, fast webhook receiver: ``thorn listen``, the demo, tests, benchmarks.

It speaks enough HTTP/1.1 (keep-alive, Content-Length and chunked bodies)
to receive webhooks, records what arrives, checks signatures when it knows
the secret, and answers as told: a status, a delay, a reset connection, a
hang, or an endless body, so senders can be tested against bad receivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools

__all__ = ["Hook", "Listener", "ListenerThread", "Reply"]


@dataclass(slots=True)
class Hook:
    """One request the listener received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    verified: str | None = None
    error: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


@dataclass(slots=True)
class Reply:
    """How to answer: ``action`` is answer, reset, hang, stream or close."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    action: str = "answer"


Handler = Callable[[Hook], Reply | None]

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    400: "Bad Request",
    404: "Not Found",
    410: "Gone",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class _ServerConnection(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._url = b""
        self._queue: asyncio.Queue[Hook | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.listener._connections.add(self)
        self.listener.connections_made += 1
        self._worker = asyncio.get_running_loop().create_task(self._answer_loop())

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener._connections.discard(self)
        self._queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
                self.transport.close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        hook = Hook(
            method=method,
            path=self._url.decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            received_at=time.time(),
        )
        self._headers, self._body, self._url = {}, [], b""
        self._queue.put_nowait(hook)

    async def _answer_loop(self) -> None:
        while True:
            hook = await self._queue.get()
            if hook is None or self.transport is None or self.transport.is_closing():
                return
            reply = self.listener._handle(hook)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if self.transport.is_closing():
                return
            if reply.action == "reset":
                self.transport.abort()
                return
            if reply.action == "hang":
                await asyncio.sleep(3600)
                return
            status = reply.status
            head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"]
            for name, value in reply.headers.items():
                head.append(f"{name}: {value}\r\n")
            if reply.action == "stream":
                head.append("Transfer-Encoding: chunked\r\n\r\n")
                self.transport.write("".join(head).encode("latin-1"))
                chunk = b"x" * 65536
                frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                # Endless body, bounded by the listener's stream_limit.
                for _ in range(self.listener.stream_limit // len(chunk)):
                    if self.transport.is_closing():
                        return
                    self.transport.write(frame)
                    await asyncio.sleep(0)
                    while (
                        not self.transport.is_closing()
                        and self.transport.get_write_buffer_size() > 1 << 20
                    ):
                        await asyncio.sleep(0.001)
                self.transport.write(b"0\r\n\r\n")
                continue
            head.append(f"Content-Length: {len(reply.body)}\r\n")
            keep = self.parser.should_keep_alive() and reply.action != "close"
            if not keep:
                head.append("Connection: close\r\n")
            head.append("\r\n")
            self.transport.write("".join(head).encode("latin-1") + reply.body)
            if not keep:
                self.transport.close()
                return


class Listener:
    """An asyncio webhook receiver bound to ``host:port`` (port 0: any free one).

    Args:
        secret: when given, each webhook's signatures are checked with it and
            the result stored on the :class:`Hook` (``verified``/``error``).
        digest: the Hook-HMAC digest to check with.
        handler: ``handler(hook) -> Reply | None`` decides each answer
            (default: 200 "ok").
        on_hook: called with each recorded hook (e.g. to print it).
        record: keep received hooks in :attr:`hooks` (turn off for load).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        secret: str | None = None,
        digest: str = "sha256",
        handler: Handler | None = None,
        on_hook: Callable[[Hook], None] | None = None,
        record: bool = True,
        stream_limit: int = 64 * 1024 * 1024,
        ssl_context: Any = None,
    ) -> None:
        self.host = host
        self.port = port
        self.secret = secret
        self.digest = digest
        self.handler = handler
        self.on_hook = on_hook
        self.record = record
        self.stream_limit = stream_limit
        self.ssl_context = ssl_context
        self.connections_made = 0
        self.hooks: list[Hook] = []
        self.count = 0
        self.routes: dict[str, Handler] = {}
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_ServerConnection] = set()
        self._changed: asyncio.Condition | None = None

    def route(self, path: str, handler: Handler | Reply | list[Reply]) -> None:
        """Answer requests to ``path`` with ``handler``.

        A :class:`Reply` answers every request the same; a list of replies
        answers the first requests in turn, then repeats the last.
        """
        if isinstance(handler, Reply):
            reply = handler
            self.routes[path] = lambda hook: reply
        elif isinstance(handler, list):
            replies = list(handler)
            calls = [0]

            def sequence(hook: Hook) -> Reply:
                i = min(calls[0], len(replies) - 1)
                calls[0] += 1
                return replies[i]

            self.routes[path] = sequence
        else:
            self.routes[path] = handler

    def _handle(self, hook: Hook) -> Reply:
        if self.secret is not None:
            from .receiver import verify_request

            try:
                hook.verified = verify_request(
                    hook.body, hook.headers, self.secret, digest=self.digest
                )
            except Exception as exc:
                hook.error = str(exc)
        self.count += 1
        if self.record:
            self.hooks.append(hook)
        if self.on_hook is not None:
            self.on_hook(hook)
        handler = self.routes.get(hook.path.split("?", 1)[0], self.handler)
        reply = handler(hook) if handler is not None else None
        return reply if reply is not None else Reply()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConnection(self),
            self.host,
            self.port,
            backlog=1024,
            ssl=self.ssl_context,
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            workers = []
            for conn in list(self._connections):
                if conn.transport is not None:
                    conn.transport.abort()
                if conn._worker is not None:
                    conn._worker.cancel()
                    workers.append(conn._worker)
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        host = host or self.host
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{shown}:{self.port}{path}"


class ListenerThread:
    """A :class:`Listener` running in a background thread (for sync code)."""

    def __init__(self, **options: Any) -> None:
        self.listener = Listener(**options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ListenerThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        from .transport.client import new_event_loop

        loop = self._loop = new_event_loop()
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.listener.start())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.listener.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="thorn-listener", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
            self._thread = None

    # Conveniences that read like the listener's own.
    @property
    def hooks(self) -> list[Hook]:
        return self.listener.hooks

    @property
    def port(self) -> int:
        return self.listener.port

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        return self.listener.url(path, host=host)

    @property
    def connections_made(self) -> int:
        return self.listener.connections_made

    def route(self, path: str, handler: Handler | Reply | list[Reply]) -> None:
        self.listener.route(path, handler)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Hook]:
        """Wait until ``count`` hooks arrived (or raise TimeoutError)."""
        deadline = time.monotonic() + timeout
        while self.listener.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"expected {count} webhooks, "
                    f"got {self.listener.count} in {timeout}s"
                )
            time.sleep(0.005)
        return self.hooks

    def clear(self) -> None:
        self.listener.hooks.clear()
        self.listener.count = 0
