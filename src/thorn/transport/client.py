"""A lean HTTP/1.1 client for webhooks: asyncio protocols and httptools.

Why not a general HTTP library: a webhook POST needs a small part of HTTP,
but it needs that part fast and safe. The client

* takes a URL parsed once (:mod:`thorn.transport.url`), resolves its host
  once, runs the recipient validators on the addresses found, and connects
  to one of *those* addresses (no DNS-rebinding window, no parser
  differential between the validator and the client);
* never follows redirects (a 3xx is an answer like any other);
* bounds the whole request by one timeout and caps the answer it reads;
* keeps connections alive per (scheme, host, port) with a per-host and a
  global limit;
* verifies TLS certificates against the URL's host name (SNI), with an
  optional CA bundle.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import email.utils
import inspect
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httptools

from ..exceptions import ConnectionFailed, DeliveryTimeout, RecipientRejected
from .resolver import IPAddress, Resolver
from .url import URL, parse_url

__all__ = ["AsyncClient", "Response", "SyncClient", "new_event_loop"]

T = TypeVar("T")

#: Idle keep-alive connections older than this are not reused: many servers
#: close idle connections after 5 to 75 seconds, and a reused connection the
#: server has just closed costs a failed write.
IDLE_TIMEOUT = 15.0

Validator = Callable[[Any], object]


class Response:
    """The receiver's answer: status, headers and the first bytes of the body."""

    __slots__ = ("body", "elapsed", "headers", "reason", "status", "truncated")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        truncated: bool = False,
        elapsed: float = 0.0,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.truncated = truncated
        self.elapsed = elapsed

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def status_code(self) -> int:
        """Alias of :attr:`status` (the name ``requests`` users know)."""
        return self.status

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def retry_after(self, *, now: float | None = None) -> float | None:
        """Seconds the receiver asked us to wait (``Retry-After``), if any.

        RFC 9110 section 10.2.3: either delay-seconds or an HTTP-date.
        """
        value = self.header("retry-after")
        if value is None:
            return None
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: write a request, parse one answer at a time."""

    def __init__(self, key: tuple[str, str, int], ip: IPAddress, max_body: int):
        self.key = key
        self.ip = ip
        self.max_body = max_body
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.truncated = False
        self.headers_done = False
        self.got_bytes = False
        self.keep_alive = True
        self.until_close = False

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for: this connection is not safe to reuse.
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionFailed("the receiver switched protocols"))
        except httptools.HttpParserError as exc:
            if waiter.done():  # we stopped reading on purpose (body cap)
                return
            self._fail(ConnectionFailed(f"invalid HTTP response: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and self.until_close:
            # RFC 9112 section 6.3: no length, not chunked: ends at close.
            self.keep_alive = False
            self._finish()
            return
        if isinstance(exc, ssl.SSLError):
            reason = f"TLS error: {exc.reason or type(exc).__name__}"
        elif exc is not None:
            reason = f"connection lost: {type(exc).__name__}"
        else:
            reason = "connection closed by the receiver before it answered"
        self._fail(ConnectionFailed(reason))

    # -- httptools callbacks ---------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        if self.status >= 200:
            has_length = False
            chunked = False
            for name, value in self.headers:
                lname = name.lower()
                if lname == "content-length":
                    has_length = True
                elif lname == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            self.until_close = not (has_length or chunked)

    def on_body(self, body: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        room = self.max_body - self.body_size
        if len(body) > room:
            # Read no further than the cap: keep what fits, answer, and drop
            # the connection (the rest of the body is never read).
            if room > 0:
                self.body.append(body[:room])
                self.body_size += room
            self.truncated = True
            self.keep_alive = False
            self._finish()
            self.close()
            return
        self.body.append(body)
        self.body_size += len(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            # An interim answer (RFC 9110 section 15.2): the real one follows.
            self.headers = []
            self.headers_done = False
            return
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._finish()

    # -- helpers ----------------------------------------------------------

    def _finish(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(
                Response(
                    self.status,
                    self.reason,
                    self.headers,
                    b"".join(self.body),
                    truncated=self.truncated,
                )
            )

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        return (
            not self.closed
            and self.keep_alive
            and self.transport is not None
            and not self.transport.is_closing()
        )

    async def roundtrip(self, data: bytes) -> Response:
        assert self.transport is not None
        self._reset()
        self.used = True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self.waiter = waiter
        self.transport.write(data)
        try:
            return await waiter
        finally:
            self.waiter = None


class _HostPool:
    __slots__ = ("idle", "limit")

    def __init__(self, limit: int) -> None:
        self.idle: collections.deque[_Connection] = collections.deque()
        self.limit = asyncio.Semaphore(limit)


class AsyncClient:
    """Post webhooks over pooled keep-alive connections in one event loop.

    Not thread-safe: an instance belongs to the loop it is first used in.
    """

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_bundle: str | None = None,
        max_response_size: int = 64 * 1024,
        max_connections_per_host: int = 32,
        max_connections: int = 512,
    ) -> None:
        self.resolver = resolver or Resolver()
        if ssl_context is None:
            ssl_context = ssl.create_default_context(cafile=ca_bundle)
        self.ssl_context = ssl_context
        self.max_response_size = max_response_size
        self.max_connections_per_host = max_connections_per_host
        self._pools: dict[tuple[str, str, int], _HostPool] = {}
        self._global = asyncio.Semaphore(max_connections)
        self._validated: dict[tuple[Any, ...], float] = {}
        self._closed = False

    def _pool(self, key: tuple[str, str, int]) -> _HostPool:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _HostPool(self.max_connections_per_host)
        return pool

    async def addresses(
        self, url: URL, validators: Sequence[Validator] = ()
    ) -> tuple[IPAddress, ...]:
        """Resolve ``url``'s host and run ``validators`` on what was found."""
        ip = url.ip
        if not validators:
            if ip is not None:
                return (ip,)
            return await self.resolver.resolve(url.host, url.port)
        vkey = tuple(validators)
        now = time.monotonic()
        if ip is not None:
            addrs: tuple[IPAddress, ...] = (ip,)
        else:
            # Validators that need no addresses (scheme, port) run before any
            # DNS lookup: a refused URL is refused, not retried as a failed
            # resolution.
            early = (vkey, url.scheme, url.host, url.port, None)
            if not self._fresh(early, now):
                await self._run_validators(url, (), validators, addresses=False)
                self._remember(early, now)
            addrs = await self.resolver.resolve(url.host, url.port)
        key = (vkey, url.scheme, url.host, url.port, addrs)
        if not self._fresh(key, now):
            if ip is not None:
                await self._run_validators(url, addrs, validators, addresses=False)
            await self._run_validators(url, addrs, validators, addresses=True)
            self._remember(key, now)
        return addrs

    def _fresh(self, key: tuple[Any, ...], now: float) -> bool:
        expires = self._validated.get(key)
        return expires is not None and expires >= now

    def _remember(self, key: tuple[Any, ...], now: float) -> None:
        if len(self._validated) > 4096:
            self._validated.clear()
        self._validated[key] = now + self.resolver.ttl

    @staticmethod
    async def _run_validators(
        url: URL,
        addrs: tuple[IPAddress, ...],
        validators: Sequence[Validator],
        *,
        addresses: bool,
    ) -> None:
        """Run the validators that need (or do not need) the addresses."""
        from ..validators import Recipient

        recipient = Recipient(url, addrs)
        for validator in validators:
            # Unknown (user) validators may look at the addresses: they run
            # once the host is resolved.
            if bool(getattr(validator, "needs_addresses", True)) != addresses:
                continue
            result = validator(recipient)
            if inspect.isawaitable(result):
                await result

    async def _connect(
        self, url: URL, key: tuple[str, str, int], addrs: Sequence[IPAddress]
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = url.scheme == "https"
        last: Exception | None = None
        for ip in addrs:
            try:
                _, conn = await loop.create_connection(
                    lambda ip=ip: _Connection(key, ip, self.max_response_size),
                    host=str(ip),
                    port=url.port,
                    ssl=self.ssl_context if tls else None,
                    server_hostname=url.host if tls else None,
                )
                return conn
            except ssl.SSLCertVerificationError as exc:
                raise ConnectionFailed(
                    f"TLS certificate of {url.host} not trusted: {exc.verify_message}"
                ) from exc
            except (OSError, ssl.SSLError) as exc:
                last = exc
        reason = last.strerror if isinstance(last, OSError) and last.strerror else last
        raise ConnectionFailed(
            f"cannot connect to {url.host_header}: {reason}"
        ) from last

    async def post(
        self,
        url: URL | str,
        body: bytes,
        headers: Sequence[tuple[str, str]] = (),
        *,
        timeout: float = 3.0,
        validators: Sequence[Validator] = (),
        keepalive: bool = True,
    ) -> Response:
        """POST ``body`` to ``url``; return the answer, whatever its status.

        Raises:
            RecipientRejected: a validator refused the URL or its addresses.
            DeliveryTimeout: no complete answer within ``timeout`` seconds.
            ConnectionFailed: resolution, connection, TLS or protocol failure.
        """
        if isinstance(url, str):
            url = parse_url(url)
        if url.scheme not in ("http", "https"):
            raise RecipientRejected(
                f"cannot post to a {url.scheme!r} URL: Thorn delivers over "
                "http and https only"
            )
        started = time.perf_counter()
        lines = [
            f"POST {url.target} HTTP/1.1\r\nHost: {url.host_header}\r\n"
            f"Content-Length: {len(body)}\r\n"
        ]
        for name, value in headers:
            lines.append(f"{name}: {value}\r\n")
        if url.username is not None and not any(
            name.lower() == "authorization" for name, _ in headers
        ):
            userinfo = f"{url.username}:{url.password or ''}".encode()
            lines.append(
                f"Authorization: Basic {base64.b64encode(userinfo).decode()}\r\n"
            )
        if not keepalive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1") + body

        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                addrs = await self.addresses(url, validators)
                key = url.origin
                pool = self._pool(key)
                async with self._global, pool.limit:
                    response = None
                    for _ in range(2):
                        conn = self._take_idle(pool, addrs) if keepalive else None
                        reused = conn is not None
                        if conn is None:
                            conn = await self._connect(url, key, addrs)
                        try:
                            response = await conn.roundtrip(data)
                            break
                        except ConnectionFailed:
                            # A kept-alive connection the server closed while
                            # idle fails before any answer: try a fresh one.
                            if reused and not conn.got_bytes:
                                conn.abort()
                                conn = None
                                continue
                            raise
                    assert response is not None
                    assert conn is not None
                    if keepalive and conn.reusable:
                        conn.idle_since = time.monotonic()
                        pool.idle.append(conn)
                    else:
                        conn.close()
                    conn = None
        except TimeoutError as exc:
            raise DeliveryTimeout(
                f"no answer from {url.host_header} within {timeout:g}s"
            ) from exc
        finally:
            if conn is not None:
                conn.abort()
        response.elapsed = time.perf_counter() - started
        return response

    @staticmethod
    def _take_idle(pool: _HostPool, addrs: Sequence[IPAddress]) -> _Connection | None:
        deadline = time.monotonic() - IDLE_TIMEOUT
        while pool.idle:
            conn = pool.idle.pop()
            if conn.reusable and conn.idle_since > deadline and conn.ip in addrs:
                return conn
            conn.close()
        return None

    async def aclose(self) -> None:
        """Close every idle connection."""
        self._closed = True
        closing = []
        for pool in self._pools.values():
            while pool.idle:
                conn = pool.idle.pop()
                conn.close()
                closing.append(conn)
        self._pools.clear()
        if closing:
            # TLS connections need a few round trips to close cleanly.
            _, pending = await asyncio.wait([c.lost for c in closing], timeout=1.0)
            for conn in closing:
                if not conn.lost.done():
                    conn.abort()
            if pending:
                await asyncio.wait(pending, timeout=0.5)
        await asyncio.sleep(0)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's where it is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class SyncClient:
    """Drive an :class:`AsyncClient` from synchronous code.

    Owns a private event loop in the calling thread, so the caller blocks
    while posts run concurrently and connections stay alive between calls.
    Use one instance per thread.
    """

    _fallback: ThreadPoolExecutor | None = None
    _fallback_lock = threading.Lock()

    def __init__(self, **client_options: Any) -> None:
        self._options = client_options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: AsyncClient | None = None
        self._fallback_client: SyncClient | None = None

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            loop = self._ensure_loop()
            asyncio.set_event_loop(loop)
            try:
                self._client = AsyncClient(**self._options)
            finally:
                asyncio.set_event_loop(None)
        return self._client

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = new_event_loop()
            self._client = None
        return self._loop

    def run(self, work: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` to completion and return its result.

        Called from a thread whose event loop is running (async code calling
        a synchronous API), the work runs on a helper thread instead, and
        this thread blocks until it is done.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return self._run_elsewhere(work)
        loop = self._ensure_loop()
        client = self.client

        async def main() -> T:
            return await work(client)

        return loop.run_until_complete(main())

    def _run_elsewhere(self, work: Callable[[AsyncClient], Awaitable[T]]) -> T:
        cls = type(self)
        with cls._fallback_lock:
            if cls._fallback is None:
                cls._fallback = ThreadPoolExecutor(1, thread_name_prefix="thorn-sync")
            if self._fallback_client is None:
                self._fallback_client = SyncClient(**self._options)
        helper = self._fallback_client
        return cls._fallback.submit(helper.run, work).result()

    def post(
        self,
        url: URL | str,
        body: bytes,
        headers: Sequence[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> Response:
        """Blocking :meth:`AsyncClient.post`."""
        return self.run(lambda client: client.post(url, body, headers, **kwargs))

    def close(self) -> None:
        """Close idle connections and the private loop."""
        if self._fallback_client is not None:
            self._fallback_client.close()
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._client is not None:
            client = self._client
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(client.aclose())
        loop.close()
        self._loop = None
        self._client = None
