"""The delivery engine: claim due deliveries, post them concurrently, record."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import functools
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..exceptions import (
    BadStatus,
    ConnectionFailed,
    DeliveryError,
    DeliveryTimeout,
)
from ..request import RESERVED_HEADERS
from ..retry import RetryPolicy, retry_after_of
from ..transport.client import AsyncClient, Response
from ..transport.url import URL, parse_url
from .http import (
    ABORTED,
    ANSWERED,
    CONNECT,
    EXPIRED,
    SKIPPED,
    TIMEOUT,
    DeliveryPoster,
    HostLane,
    PostJob,
    request_head,
    webhook_headers,
)
from .store import AttemptResult, DeliveryTask, OutboxStore, Outcome

__all__ = ["DeliveryEngine"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime.datetime]

_UTC = datetime.UTC
#: Job kinds of tries the engine could not make (see thorn.engine.http).
REJECTED = "rejected"  # a validator refused the URL, or a header is invalid
UNRESOLVED = "unresolved"  # the host could not be resolved
_BAD_VALUE = frozenset("\r\n\x00")


def _nothing() -> None:
    """A store call that does nothing (waits for the calls before it)."""


def utcnow() -> datetime.datetime:
    """The default clock: now, in UTC."""
    return datetime.datetime.now(_UTC)


class _Target:
    """One subscriber URL: parsed, its lane, and when its check expires."""

    __slots__ = ("checked_until", "error", "lane", "unresolved", "url")

    def __init__(self, url: URL | None, lane: HostLane | None, error: str = "") -> None:
        self.url = url
        self.lane = lane
        self.error = error  # the URL cannot be posted to: why
        self.unresolved = False  # ...because its host could not be resolved
        self.checked_until = 0.0


class _Batch:
    """Tasks claimed together: when they were claimed, how many are left."""

    __slots__ = ("done", "left", "mono", "now")

    def __init__(self, now: datetime.datetime, left: int) -> None:
        self.now = now
        self.mono = time.monotonic()
        self.left = left
        self.done: asyncio.Future[None] | None = None


class DeliveryEngine:
    """Post the outbox's due deliveries, concurrently, and record every try.

    Args:
        store: the outbox (:class:`~thorn.engine.store.OutboxStore`). Its
            methods are synchronous; they run in one dedicated thread (one
            database connection), overlapped with the network work.
        owner: the lease owner name (default: host, pid and a random part).
        batch: how many deliveries one claim takes.
        concurrency: requests in flight at once, in all.
        per_host: requests in flight at once to one origin.
        lease: seconds a claim holds a delivery. Keep it well above
            ``timeout * batch / per_host``: the engine renews nothing, and
            a delivery whose lease ran out before it was posted is left to
            whoever claims it next.
        poll_interval: seconds between claims when nothing is due.
        clock: returns the current time (aware, UTC); tests pass their own.
        client: gives the resolver, the recipient validators' address check
            (:meth:`AsyncClient.addresses`) and the TLS context.
        validators: recipient validators run on each URL and the addresses
            it resolves to (default: the app's ``THORN_RECIPIENT_VALIDATORS``).
        signer: the :class:`~thorn.signing.Signer` (default: the app's).
        breaker_threshold, breaker_cooldown: the per-host circuit breaker
            (see :class:`~thorn.engine.http.HostLane`).
        drain_timeout: how long :meth:`run` waits for requests in flight
            when it is told to stop.

    A delivery skipped because its host's breaker is open is recorded as an
    attempt with no status and the error ``circuit open: ...``, outcome
    ``retry``. It is rescheduled as if it had failed to connect (its next
    wait from the retry policy), but never before the breaker lets a probe
    in, and never *failed*: when its tries are used up it still comes back
    once the breaker closes, for one real last try.
    """

    def __init__(
        self,
        store: OutboxStore,
        *,
        owner: str | None = None,
        batch: int = 500,
        concurrency: int = 256,
        per_host: int = 64,
        lease: float = 300.0,
        poll_interval: float = 0.5,
        clock: Clock | None = None,
        client: AsyncClient | None = None,
        validators: Sequence[Callable[..., Any]] | None = None,
        signer: Any = None,
        app: Any = None,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        drain_timeout: float = 10.0,
        max_response_size: int = 64 * 1024,
        excerpt_size: int = 512,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if lease <= 0:
            raise ValueError("lease must be a positive number of seconds")
        self.store = store
        self.owner = owner or (
            f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )
        self.batch = batch
        self.concurrency = concurrency
        self.per_host = per_host
        self.lease = float(lease)
        self.poll_interval = poll_interval
        self.clock: Clock = clock or utcnow
        self.drain_timeout = drain_timeout
        if validators is None or signer is None or client is None:
            from ..app import app_or_default

            the_app = app_or_default(app)
            if validators is None:
                validators = the_app.recipient_validators
            if signer is None:
                signer = the_app.signer
            if client is None:
                client = AsyncClient(
                    resolver=the_app.resolver, max_response_size=max_response_size
                )
        self.validators = tuple(validators)
        self.signer = signer
        self.client = client
        self.poster = DeliveryPoster(
            self._on_done,
            concurrency=concurrency,
            per_host=per_host,
            ssl_context=client.ssl_context,
            max_response_size=max_response_size,
            excerpt_size=excerpt_size,
            breaker_threshold=breaker_threshold,
            breaker_cooldown=breaker_cooldown,
        )
        #: Counters, for metrics: finished tries by what came of them.
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.skipped = 0
        self._results: list[AttemptResult] = []
        self._releases: list[str] = []
        self._outstanding = 0  # claimed, not finished
        self._targets: dict[str, _Target] = {}
        self._heads: dict[tuple[Any, ...], bytes] = {}
        self._policies: dict[tuple[Any, ...], RetryPolicy] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._room: asyncio.Event | None = None
        self._flush: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._draining = False
        hooks = type(self)
        self._hooked = (
            hooks.before_attempt is not DeliveryEngine.before_attempt
            or hooks.after_attempt is not DeliveryEngine.after_attempt
        )

    # -- hooks ----------------------------------------------------------

    def before_attempt(self, task: DeliveryTask) -> None:
        """Called before each try is posted (no-op; override it)."""

    def after_attempt(self, task: DeliveryTask, result: AttemptResult) -> None:
        """Called with the result of each try (no-op; override it)."""

    # -- public API -------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests on the wire now."""
        return self.poster.in_flight

    def wake(self) -> None:
        """Claim now instead of after the poll interval (new work is due)."""
        if self._wake is not None:
            self._wake.set()

    async def run_once(self, now: datetime.datetime | None = None) -> int:
        """Claim one batch, post it, record the results; return how many tried.

        ``now`` is the time the claim and the retry schedule are based on
        (default: the clock's). Not to be mixed with a running :meth:`run`.
        """
        self._draining = False
        now = now or self.clock()
        tasks = await self._db(
            self.store.claim,
            owner=self.owner,
            limit=self.batch,
            lease=self.lease,
            now=now,
        )
        if not tasks:
            return 0
        batch = _Batch(now, len(tasks))
        batch.done = asyncio.get_running_loop().create_future()
        self._outstanding += len(tasks)
        await self._launch(tasks, batch)
        if batch.left:
            await batch.done
        await self._record(now)
        await self._release()
        return len(tasks)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then :meth:`drain`."""
        loop = asyncio.get_running_loop()
        self._room = asyncio.Event()
        self._flush = asyncio.Event()
        self._wake = asyncio.Event()
        self._draining = False
        self._recorder = loop.create_task(self._record_loop())
        stopping = loop.create_task(stop.wait())
        try:
            while not stop.is_set():
                if self._outstanding >= self.batch:
                    self._room.clear()
                    await self._wait(self._room, stopping, None)
                    continue
                now = self.clock()
                try:
                    tasks = await self._db(
                        self.store.claim,
                        owner=self.owner,
                        limit=self.batch,
                        lease=self.lease,
                        now=now,
                    )
                except Exception:
                    logger.exception("thorn engine: claim failed; trying again")
                    await self._wait(self._wake, stopping, self.poll_interval)
                    continue
                if tasks:
                    batch = _Batch(now, len(tasks))
                    self._outstanding += len(tasks)
                    await self._launch(tasks, batch)
                if len(tasks) < self.batch and not stop.is_set():
                    # Nothing more is due now: look again after a while.
                    self._wake.clear()
                    await self._wait(self._wake, stopping, self.poll_interval)
        finally:
            stopping.cancel()
            await self.drain(self.drain_timeout)

    async def drain(self, timeout: float) -> None:
        """Stop posting: wait up to ``timeout`` for requests in flight, then
        abort the rest; record what finished and release what did not."""
        self._draining = True
        poster = self.poster
        for job in poster.take_queued():
            self._settle(job, release=True)
        if poster.in_flight:
            self._idle = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
            self._idle = None
        poster.abort_in_flight()
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            # What it is storing now is stored by the thread all the same.
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
        await self._record(self.clock())
        await self._release()
        await self.aclose()

    async def aclose(self) -> None:
        """Close connections and the database thread (after :meth:`run_once`)."""
        await self.poster.aclose()
        executor = self._executor
        if executor is not None:
            close = getattr(self.store, "close", None)
            # Runs after every store call asked for before (one thread, in
            # order), so none is left behind.
            await self._db(close if callable(close) else _nothing)
            executor.shutdown(wait=False)
            self._executor = None

    # -- claiming and posting ---------------------------------------------

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="thorn-engine-db"
            )
        loop = asyncio.get_running_loop()
        # Shielded: a store call, once asked for, is made even if the caller
        # is cancelled (drain cancels the recorder). Else a call still queued
        # for the thread would be dropped: results posted but never stored,
        # and their deliveries posted again when the leases run out.
        return await asyncio.shield(
            loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        )

    async def _launch(self, tasks: Sequence[DeliveryTask], batch: _Batch) -> None:
        """Check the URLs of ``tasks``, build their requests, hand them over."""
        targets = await self._check_targets(tasks)
        if self._draining:
            for task in tasks:
                self._releases.append(task.id)
                self._finish_task(batch)
            return
        lease_end = batch.mono + self.lease
        timestamp = int(time.time())
        jobs: list[PostJob] = []
        hooked = self._hooked
        for task in tasks:
            target = targets[task.url]
            lane = target.lane
            if lane is None:
                kind = UNRESOLVED if target.unresolved else REJECTED
                self._reject(task, batch, kind, target.error)
                continue
            try:
                data = self._request_bytes(task, target, timestamp)
            except ValueError as exc:
                self._reject(task, batch, REJECTED, str(exc))
                continue
            if hooked:
                self.before_attempt(task)
            jobs.append(PostJob(lane, data, task.timeout, (task, batch), lease_end))
        if jobs:
            self.poster.submit(jobs)

    async def _check_targets(self, tasks: Sequence[DeliveryTask]) -> dict[str, _Target]:
        """Parse and validate each distinct URL (cached for the resolver's TTL)."""
        found: dict[str, _Target] = {}
        # Stale targets by origin: the address check (resolution, recipient
        # validators) is one per origin, as AsyncClient.addresses caches it;
        # a fan-out to 10,000 paths on one host makes one check, not 10,000.
        stale: dict[tuple[str, str, int], list[_Target]] = {}
        now = time.monotonic()
        for task in tasks:
            text = task.url
            if text in found:
                continue
            target = self._targets.get(text)
            if target is None:
                target = self._new_target(text)
            found[text] = target
            url = target.url
            if url is not None and target.checked_until < now:
                stale.setdefault((url.scheme, url.host, url.port), []).append(target)
        if stale:
            timeout = max(task.timeout for task in tasks)
            if len(stale) == 1:
                (group,) = stale.values()
                await self._check(group, timeout)
            else:
                await asyncio.gather(
                    *(self._check(group, timeout) for group in stale.values())
                )
        return found

    def _new_target(self, text: str) -> _Target:
        try:
            url = parse_url(text)
        except ValueError as exc:
            target = _Target(None, None, str(exc))
        else:
            if url.scheme not in ("http", "https"):
                target = _Target(
                    None,
                    None,
                    f"cannot post to a {url.scheme!r} URL: Thorn "
                    "delivers over http and https only",
                )
            else:
                target = _Target(url, self.poster.lane(url))
        if len(self._targets) >= 65536:
            self._targets.clear()
        self._targets[text] = target
        return target

    async def _check(self, group: list[_Target], timeout: float) -> None:
        """Resolve and validate the origin of ``group`` (targets of one origin)."""
        url = group[0].url
        assert url is not None
        lane = self.poster.lane(url)
        error = ""
        unresolved = False
        try:
            async with asyncio.timeout(timeout):
                addrs = await self.client.addresses(url, self.validators)
        except (ConnectionFailed, TimeoutError) as exc:
            # Resolution failed: this batch's tries to it fail (and retry).
            error = str(exc) or f"could not resolve {url.host} in time"
            unresolved = True
        except ValueError as exc:  # RecipientRejected, or a user validator's
            error = str(exc)
        else:
            lane.set_addresses(addrs)
        until = 0.0 if error else time.monotonic() + self.client.resolver.ttl
        for target in group:
            target.lane = None if error else lane
            target.error = error
            target.unresolved = unresolved
            target.checked_until = until

    def _request_bytes(self, task: DeliveryTask, target: _Target, ts: int) -> bytes:
        key = (task.url, task.event, task.content_type, task.subscription, task.headers)
        head = self._heads.get(key)
        if head is None:
            # A store may keep every header of the request it was made from
            # (Request.default_headers): Thorn's own are made afresh here,
            # the rest (and a User-Agent of the sender's choice) are extras.
            extra = tuple(
                h for h in task.headers if h[0].lower() not in RESERVED_HEADERS
            )
            head = self._head(task, target, extra, key)
        body = task.body
        signed = self.signer.headers(
            body=body,
            msg_id=task.id,
            timestamp=ts,
            secret=task.hmac_secret or None,
            digest=task.hmac_digest or "sha256",
            extra_secrets=task.extra_secrets,
        )
        lines = [f"Hook-Delivery: {task.id}\r\n"]
        for name, value in signed.items():
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        return head + "".join(lines).encode("latin-1") + body

    def _head(
        self,
        task: DeliveryTask,
        target: _Target,
        extra: tuple[tuple[str, str], ...],
        key: tuple[Any, ...],
    ) -> bytes:
        for value in (task.event, task.content_type, task.subscription):
            if _BAD_VALUE.intersection(value):
                raise ValueError("an event, content type or subscription holds CR/LF")
        headers = webhook_headers(
            event=task.event,
            delivery_id="",
            content_type=task.content_type,
            subscription=task.subscription,
            extra=extra,
        )
        # The delivery id goes in the part built for each try.
        headers = [(k, v) for k, v in headers if k != "Hook-Delivery"]
        assert target.url is not None
        head = request_head(target.url, headers)
        if len(self._heads) >= 65536:
            self._heads.clear()
        self._heads[key] = head
        return head

    # -- results ----------------------------------------------------------

    def _on_done(self, job: PostJob) -> None:
        task, batch = job.tag
        kind = job.kind
        if kind == EXPIRED:
            # Our lease ran out before the request started: whoever claims
            # the delivery next posts it. Nothing to record or release.
            self._finish_task(batch)
            return
        if kind == ABORTED:
            self._settle(job, release=True)
            return
        if kind == ANSWERED and 200 <= job.status < 300:
            self.delivered += 1
            result = AttemptResult(
                task.id,
                "succeeded",
                batch.now + datetime.timedelta(seconds=job.started - batch.mono),
                job.duration,
                job.status,
                "",
                job.body,
                None,
                task.subscriber_key,
            )
        else:
            # Retries are scheduled from the batch's "now" (the claim's clock,
            # which tests control) plus the real time since.
            when = batch.now + datetime.timedelta(seconds=time.monotonic() - batch.mono)
            started = (
                batch.now + datetime.timedelta(seconds=job.started - batch.mono)
                if job.started
                else when
            )
            result = self._failure(task, job, started, when)
        self._results.append(result)
        if self._hooked:
            self.after_attempt(task, result)
        self._finish_task(batch)

    def _settle(self, job: PostJob, *, release: bool) -> None:
        task, batch = job.tag
        if release:
            self._releases.append(task.id)
        self._finish_task(batch)

    def _finish_task(self, batch: _Batch) -> None:
        batch.left -= 1
        if not batch.left and batch.done is not None and not batch.done.done():
            batch.done.set_result(None)
        self._outstanding -= 1
        if self._room is not None and self._outstanding < self.batch:
            self._room.set()
        if self._flush is not None:
            self._flush.set()
        if self._idle is not None and not self.poster.in_flight:
            self._idle.set()

    def _reject(
        self, task: DeliveryTask, batch: _Batch, kind: str, reason: str
    ) -> None:
        """A try that could not be made (refused URL, bad header): recorded."""
        job = PostJob(None, b"", task.timeout, (task, batch), 0.0)  # type: ignore[arg-type]
        job.kind = kind
        job.error = reason
        self._on_done(job)

    def _policy(self, data: dict[str, Any]) -> RetryPolicy:
        key = tuple(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(data.items())
        )
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = RetryPolicy.from_dict(data)
        return policy

    def _failure(
        self,
        task: DeliveryTask,
        job: PostJob,
        started: datetime.datetime,
        when: datetime.datetime,
    ) -> AttemptResult:
        """The result of a try that did not succeed: retry, failed or gone."""
        policy = self._policy(task.policy)
        kind = job.kind
        status: int | None = None
        excerpt = b""
        duration = job.duration
        error = job.error
        outcome: Outcome = "failed"
        nxt: datetime.datetime | None = None
        exc: DeliveryError | None = None
        if kind == SKIPPED:
            # Not posted: scheduled as a failed connection would be, but
            # never before the breaker lets a probe in, and never failed.
            duration = 0.0
            outcome = "retry"
            self.skipped += 1
            wait = job.wait + random.uniform(0.0, job.wait / 2)
            if policy.retry and task.attempts < policy.max_retries:
                wait = max(wait, policy.delay_for(task.attempts))
            nxt = when + datetime.timedelta(seconds=wait)
        elif kind == ANSWERED:
            status = job.status
            excerpt = job.body
            error = f"{status} {job.reason}".rstrip()
            if status == 410:
                outcome = "gone"
            else:
                headers = [("Retry-After", job.retry_after)] if job.retry_after else []
                response = Response(status, job.reason, headers, excerpt)
                exc = BadStatus(error, response=response)
        elif kind == TIMEOUT:
            exc = DeliveryTimeout(error)
        elif kind in (CONNECT, UNRESOLVED):
            exc = ConnectionFailed(error)
        else:  # refused before posting (REJECTED): would be refused again
            duration = 0.0
        if exc is not None and policy.should_retry(task.attempts, exc):
            outcome = "retry"
            delay = policy.delay_for(task.attempts, retry_after=retry_after_of(exc))
            nxt = when + datetime.timedelta(seconds=delay)
        if outcome == "retry":
            self.retried += 1
        else:
            self.failed += 1
        return AttemptResult(
            task.id,
            outcome,
            started,
            duration,
            status,
            error[:500],
            excerpt,
            nxt,
            task.subscriber_key,
        )

    # -- recording ----------------------------------------------------------

    async def _record(self, now: datetime.datetime) -> None:
        while self._results:
            results, self._results = self._results, []
            for pause in (0.1, 0.5, 2.0, None):
                try:
                    await self._db(
                        self.store.record, results, owner=self.owner, now=now
                    )
                    break
                except Exception:
                    if pause is None:
                        # The leases run out and the deliveries are tried
                        # again: at least once holds, these tries are unlogged.
                        logger.exception(
                            "thorn engine: could not record %d results",
                            len(results),
                        )
                        break
                    logger.warning(
                        "thorn engine: recording failed; again in %gs",
                        pause,
                        exc_info=True,
                    )
                    await asyncio.sleep(pause)

    async def _release(self) -> None:
        if not self._releases:
            return
        ids, self._releases = self._releases, []
        try:
            await self._db(self.store.release, ids, owner=self.owner)
        except Exception:
            logger.exception(
                "thorn engine: could not release %d deliveries; their leases "
                "will run out",
                len(ids),
            )

    async def _record_loop(self) -> None:
        flush = self._flush
        assert flush is not None
        while True:
            await flush.wait()
            flush.clear()
            if self._results:
                await self._record(self.clock())
            if self._releases:
                await self._release()

    @staticmethod
    async def _wait(
        event: asyncio.Event, stopping: asyncio.Task[Any], timeout: float | None
    ) -> None:
        waiter = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait(
                (waiter, stopping),
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
