"""The engine's HTTP path: lean keep-alive connections driven by callbacks.

:class:`~thorn.transport.client.AsyncClient` gives every request a
coroutine, a timeout scope and two semaphores. The engine posts thousands
of requests a second to the same few receivers, so here

* a request is a :class:`PostJob` (pre-built bytes, a deadline, a result),
  not a coroutine: a connection that finishes one answer writes the next
  queued request of its host at once;
* limits are counters (global and per host), not semaphores;
* timeouts are checked by one ticker for all requests (a coarse timer wheel:
  a request ends at most one tick after its deadline), not a timer each;
* a per-host circuit breaker stops posting to a host after a run of
  connection failures and timeouts (see :class:`HostLane`).

The guarantees of the core transport stay: the engine resolves and
validates with :meth:`AsyncClient.addresses` and gives each lane the checked
addresses, and connections go to those addresses only; no redirects (a 3xx
is an answer); the answer read is capped; TLS is verified against the URL's
host name with the client's SSL context.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httptools

from ..request import webhook_headers
from ..transport.resolver import IPAddress
from ..transport.url import URL

__all__ = ["DeliveryPoster", "HostLane", "PostJob", "request_head", "webhook_headers"]

#: Idle keep-alive connections older than this are closed, not reused
#: (servers close idle connections after 5 to 75 seconds).
IDLE_TIMEOUT = 15.0

#: What a finished job's ``kind`` says: answered (any status), or why not.
ANSWERED = ""
TIMEOUT = "timeout"
CONNECT = "connect"  # refused, reset, TLS, invalid HTTP
SKIPPED = "skipped"  # circuit open: not posted
ABORTED = "aborted"  # the engine stopped before an answer came
EXPIRED = "expired"  # the lease ran out before the request could start


def request_head(url: URL, headers: Sequence[tuple[str, str]]) -> bytes:
    """Request line, ``Host``, ``headers`` and credentials, as bytes.

    What stays the same for every delivery to one subscriber; the engine
    appends the per-delivery headers, ``Content-Length`` and the body.
    """
    lines = [f"POST {url.target} HTTP/1.1\r\nHost: {url.host_header}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    if url.username is not None and not any(
        name.lower() == "authorization" for name, _ in headers
    ):
        userinfo = f"{url.username}:{url.password or ''}".encode()
        token = base64.b64encode(userinfo).decode()
        lines.append(f"Authorization: Basic {token}\r\n")
    return "".join(lines).encode("latin-1")


class PostJob:
    """One request of one delivery, and what came of it."""

    __slots__ = (
        "body",
        "conn",
        "data",
        "deadline",
        "duration",
        "error",
        "kind",
        "lane",
        "lease_end",
        "opener",
        "reason",
        "retried",
        "retry_after",
        "started",
        "status",
        "tag",
        "timeout",
        "truncated",
        "wait",
    )

    def __init__(
        self, lane: HostLane, data: bytes, timeout: float, tag: Any, lease_end: float
    ) -> None:
        self.lane = lane
        self.data = data
        self.timeout = timeout
        self.tag = tag  # the engine's: the task and its batch
        self.lease_end = lease_end  # monotonic; do not start after this
        self.deadline = 0.0
        self.started = 0.0
        self.duration = 0.0
        self.conn: _PosterConnection | None = None
        self.opener: asyncio.Task[None] | None = None
        self.retried = False
        self.status = 0
        self.reason = ""
        self.retry_after: str | None = None
        self.body = b""
        self.truncated = False
        self.kind = ANSWERED
        self.error = ""
        self.wait = 0.0  # for SKIPPED: seconds until the breaker lets a probe in


class HostLane:
    """The connections and queue of one origin (scheme, host, port).

    Circuit breaker: after ``threshold`` connection failures or timeouts in
    a row (any answer, whatever its status, resets the count), the lane is
    *open* for ``cooldown`` seconds: its queued and new requests finish as
    ``skipped`` without being posted. Then one request at a time probes the
    host (*half-open*); an answer closes the breaker, a failure opens it
    again with a doubled cool-down (capped at 16 times the first).
    """

    __slots__ = (
        "active",
        "addrs",
        "cooldown",
        "failures",
        "host",
        "idle",
        "key",
        "limit",
        "open_until",
        "opens",
        "port",
        "probing",
        "queue",
        "ready",
        "tls",
    )

    def __init__(self, url: URL, limit: int) -> None:
        self.key = url.origin
        self.host = url.host
        self.port = url.port
        self.tls = url.scheme == "https"
        self.limit = limit
        self.addrs: frozenset[IPAddress] = frozenset()
        self.idle: list[_PosterConnection] = []
        self.queue: collections.deque[PostJob] = collections.deque()
        self.active = 0
        self.ready = False
        self.failures = 0
        self.opens = 0
        self.open_until = 0.0
        self.cooldown = 0.0
        self.probing = False

    def set_addresses(self, addrs: Sequence[IPAddress]) -> None:
        """Connect to these (checked) addresses only from now on."""
        if frozenset(addrs) != self.addrs:
            self.addrs = frozenset(addrs)
            for conn in self.idle:
                conn.close()
            self.idle.clear()

    @property
    def is_open(self) -> bool:
        """True while the breaker refuses to post (open, or probing)."""
        return self.open_until > 0.0 and (
            self.probing or time.monotonic() < self.open_until
        )


class _PosterConnection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, answers parsed in place."""

    def __init__(self, poster: DeliveryPoster, lane: HostLane, ip: IPAddress) -> None:
        self.poster = poster
        self.lane = lane
        self.ip = ip
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.job: PostJob | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.got_bytes = False
        self.headers_done = False
        self.framed = False
        self.size = 0
        self.parts: list[bytes] = []
        self.reason = b""
        self.retry_after: bytes | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.poster._open_connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.job is None:
            # Bytes nobody asked for: the connection is not safe to reuse.
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the receiver switched protocols")
        except httptools.HttpParserError as exc:
            self._fail(f"invalid HTTP response: {exc}")

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.poster._open_connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        job = self.job
        if job is None:
            return
        if self.headers_done and not self.framed:
            # RFC 9112 section 6.3: no length, not chunked: the body ends here.
            self._answer(keep=False)
            return
        if self.reused and not self.got_bytes and not job.retried:
            # A kept-alive connection the server closed while it was idle
            # fails before any answer: the request goes on a new one.
            self.job = None
            self.poster._reopen(job)
            return
        if isinstance(exc, ssl.SSLError):
            reason = f"TLS error: {exc.reason or type(exc).__name__}"
        elif exc is not None:
            reason = f"connection lost: {type(exc).__name__}"
        else:
            reason = "connection closed by the receiver before it answered"
        self._fail(reason)

    # -- httptools callbacks ---------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 11 and name.lower() == b"retry-after":
            self.retry_after = value
        elif name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.job is None:
            return
        poster = self.poster
        room = poster.excerpt_size - self.size
        if room > 0:
            self.parts.append(body[:room] if len(body) > room else body)
        self.size += len(body)
        if self.size > poster.max_response_size:
            # Read no further than the cap: answer with what we have and
            # drop the connection (the rest of the body is never read).
            self._answer(keep=False, truncated=True)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # An interim answer (RFC 9110 section 15.2): the real one follows.
            self.headers_done = False
            self.framed = False
            self.retry_after = None
            return
        if self.job is not None:
            self._answer(keep=self.parser.should_keep_alive())

    # -- the poster's side ------------------------------------------------

    def send(self, job: PostJob) -> None:
        self.job = job
        job.conn = self
        self.got_bytes = False
        self.headers_done = False
        self.framed = False
        self.size = 0
        self.parts = []
        self.retry_after = None
        self.transport.write(job.data)  # type: ignore[union-attr]

    def _answer(self, *, keep: bool, truncated: bool = False) -> None:
        job = self.job
        assert job is not None
        self.job = None
        job.conn = None
        job.status = self.parser.get_status_code()
        job.body = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        job.truncated = truncated
        if self.retry_after is not None:
            job.retry_after = self.retry_after.decode("latin-1")
        if not 200 <= job.status < 300:
            job.reason = self.reason.decode("latin-1")
        if not keep:
            self.close()
        self.poster._finish(job, self if keep else None)

    def _fail(self, reason: str) -> None:
        job = self.job
        self.abort()
        if job is not None:
            self.job = None
            job.conn = None
            job.kind = CONNECT
            job.error = reason
            self.poster._finish(job, None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class DeliveryPoster:
    """Post :class:`PostJob` objects over keep-alive connections; call back.

    ``on_done(job)`` is called once per submitted job, in the loop, when it
    is answered, failed, skipped or aborted. Not thread-safe: use it in the
    loop it was made in.
    """

    def __init__(
        self,
        on_done: Callable[[PostJob], None],
        *,
        concurrency: int = 256,
        per_host: int = 64,
        ssl_context: ssl.SSLContext | None = None,
        max_response_size: int = 64 * 1024,
        excerpt_size: int = 512,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        tick: float = 0.05,
    ) -> None:
        if concurrency < 1 or per_host < 1:
            raise ValueError("concurrency and per_host must be at least 1")
        self.on_done = on_done
        self.concurrency = concurrency
        self.per_host = per_host
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.max_response_size = max_response_size
        self.excerpt_size = min(excerpt_size, max_response_size)
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown = breaker_cooldown
        self.tick = tick
        self.in_flight = 0
        self.queued = 0
        self.lanes: dict[tuple[str, str, int], HostLane] = {}
        self._ready: collections.deque[HostLane] = collections.deque()
        self._busy: set[PostJob] = set()
        self._open_connections: set[_PosterConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.TimerHandle | None = None

    # -- submitting -----------------------------------------------------

    def lane(self, url: URL) -> HostLane:
        """The lane of ``url``'s origin (made on first use)."""
        lane = self.lanes.get(url.origin)
        if lane is None:
            lane = self.lanes[url.origin] = HostLane(url, self.per_host)
        return lane

    def submit(self, jobs: Iterable[PostJob]) -> None:
        """Queue ``jobs`` (their lanes must have checked addresses) and start."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if self._ticker is None:
            self._ticker = self._loop.call_later(self.tick, self._tick)
        ready = self._ready
        for job in jobs:
            lane = job.lane
            lane.queue.append(job)
            self.queued += 1
            if not lane.ready:
                lane.ready = True
                ready.append(lane)
        self._pump()

    def _pump(self) -> None:
        ready = self._ready
        while ready and self.in_flight < self.concurrency:
            lane = ready[0]
            if not lane.queue or lane.active >= lane.limit:
                ready.popleft()
                lane.ready = False
                continue
            job = lane.queue.popleft()
            self.queued -= 1
            if len(ready) > 1:
                ready.rotate(-1)  # round robin between hosts
            self._start(lane, job)

    def _start(self, lane: HostLane, job: PostJob) -> None:
        now = time.monotonic()
        if now > job.lease_end:
            job.kind = EXPIRED
            self.on_done(job)
            return
        if lane.open_until:
            if lane.probing or now < lane.open_until:
                self._skip(job, lane, now)
                return
            lane.probing = True  # half-open: this request is the probe
        self.in_flight += 1
        lane.active += 1
        job.started = now
        job.deadline = now + job.timeout
        self._busy.add(job)
        idle = lane.idle
        stale = now - IDLE_TIMEOUT
        while idle:
            conn = idle.pop()
            if conn.closed or conn.idle_since < stale or conn.ip not in lane.addrs:
                conn.close()
                continue
            conn.reused = True
            conn.send(job)
            return
        job.opener = self._loop.create_task(self._open(job))  # type: ignore[union-attr]

    def _skip(self, job: PostJob, lane: HostLane, now: float) -> None:
        job.kind = SKIPPED
        job.wait = max(lane.open_until - now, 0.0) or lane.cooldown
        job.error = (
            f"circuit open: {self.breaker_threshold} connection failures or "
            f"timeouts in a row at {lane.host}; not posted"
        )
        self.on_done(job)

    def _reopen(self, job: PostJob) -> None:
        job.retried = True
        job.opener = self._loop.create_task(self._open(job))  # type: ignore[union-attr]

    async def _open(self, job: PostJob) -> None:
        lane = job.lane
        loop = self._loop
        assert loop is not None
        last: BaseException | None = None
        for ip in sorted(lane.addrs, key=lambda a: (a.version, a)):
            try:
                _, conn = await loop.create_connection(
                    lambda ip=ip: _PosterConnection(self, lane, ip),
                    host=str(ip),
                    port=lane.port,
                    ssl=self.ssl_context if lane.tls else None,
                    server_hostname=lane.host if lane.tls else None,
                )
            except ssl.SSLCertVerificationError as exc:
                self._fail_open(
                    job,
                    f"TLS certificate of {lane.host} not trusted: {exc.verify_message}",
                )
                return
            except (OSError, ssl.SSLError) as exc:
                last = exc
                continue
            job.opener = None
            if job.kind or job not in self._busy:  # timed out meanwhile
                conn.close()
                return
            conn.send(job)
            return
        if isinstance(last, OSError) and last.strerror:
            reason = last.strerror
        else:
            reason = str(last or "no checked address")
        self._fail_open(job, f"cannot connect to {lane.host}:{lane.port}: {reason}")

    def _fail_open(self, job: PostJob, reason: str) -> None:
        job.opener = None
        if job in self._busy:
            job.kind = CONNECT
            job.error = reason
            self._finish(job, None)

    # -- finishing ------------------------------------------------------

    def _finish(self, job: PostJob, conn: _PosterConnection | None) -> None:
        self._busy.discard(job)
        now = time.monotonic()
        job.duration = now - job.started
        lane = job.lane
        self.in_flight -= 1
        lane.active -= 1
        kind = job.kind
        if kind == ANSWERED:
            if lane.open_until or lane.failures:
                lane.failures = 0
                lane.opens = 0
                lane.open_until = 0.0
                lane.probing = False
        elif kind in (CONNECT, TIMEOUT):
            lane.failures += 1
            if lane.failures >= self.breaker_threshold:
                self._open_breaker(lane, now)
        if conn is not None:
            ready = self._ready
            if (
                lane.queue
                and not lane.open_until
                and self.in_flight < self.concurrency
                and (not ready or (len(ready) == 1 and ready[0] is lane))
            ):
                # The common case: this connection takes its host's next job
                # (when no other host waits for the slot it frees).
                nxt = lane.queue.popleft()
                self.queued -= 1
                self.on_done(job)
                if now > nxt.lease_end:
                    nxt.kind = EXPIRED
                    conn.idle_since = now
                    lane.idle.append(conn)
                    self.on_done(nxt)
                    self._pump()
                    return
                self.in_flight += 1
                lane.active += 1
                nxt.started = now
                nxt.deadline = now + nxt.timeout
                self._busy.add(nxt)
                conn.reused = True
                conn.send(nxt)
                return
            conn.idle_since = now
            lane.idle.append(conn)
        self.on_done(job)
        if lane.queue and not lane.ready:
            lane.ready = True
            self._ready.append(lane)
        self._pump()

    def _open_breaker(self, lane: HostLane, now: float) -> None:
        lane.opens += 1
        lane.cooldown = self.breaker_cooldown * min(2 ** (lane.opens - 1), 16)
        lane.open_until = now + lane.cooldown
        lane.probing = False
        # What waits for this host would wait for nothing: give it back now.
        while lane.queue:
            job = lane.queue.popleft()
            self.queued -= 1
            self._skip(job, lane, now)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = time.monotonic()
        late = [job for job in self._busy if job.deadline <= now]
        for job in late:
            if job not in self._busy:
                continue
            job.kind = TIMEOUT
            job.error = f"no answer from {job.lane.host} within {job.timeout:g}s"
            self._drop(job)
            self._finish(job, None)
        self._ticker = loop.call_later(self.tick, self._tick)

    def _drop(self, job: PostJob) -> None:
        conn = job.conn
        if conn is not None:
            conn.job = None
            job.conn = None
            conn.abort()
        if job.opener is not None:
            job.opener.cancel()
            job.opener = None

    # -- stopping -------------------------------------------------------

    def take_queued(self) -> list[PostJob]:
        """Remove and return every job not started yet."""
        jobs: list[PostJob] = []
        for lane in self.lanes.values():
            jobs.extend(lane.queue)
            lane.queue.clear()
            lane.ready = False
        self._ready.clear()
        self.queued = 0
        return jobs

    def abort_in_flight(self) -> list[PostJob]:
        """Abort every started job; each is reported as ``aborted``."""
        jobs = list(self._busy)
        for job in jobs:
            job.kind = ABORTED
            job.error = "the engine stopped before an answer came"
            self._drop(job)
            self._finish(job, None)
        return jobs

    async def aclose(self) -> None:
        """Close every connection and stop the ticker (jobs must be done)."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for lane in self.lanes.values():
            lane.idle.clear()
        closing = list(self._open_connections)
        for conn in closing:
            conn.close()
        if closing:
            # TLS connections take a few round trips to close cleanly.
            _, late = await asyncio.wait([c.lost for c in closing], timeout=1.0)
            for conn in closing:
                if not conn.lost.done():
                    conn.abort()
            if late:
                await asyncio.wait(late, timeout=0.5)
        self._loop = None
        await asyncio.sleep(0)
