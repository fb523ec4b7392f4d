"""Tasks used by the Celery dispatcher (``THORN_DISPATCHER = "celery"``).

* :func:`send_event` ``(event, payload, sender, timeout, context={})``: find
  the subscribers in the worker and deliver (the manual's entry point, for
  producers that do not know the subscribers);
* :func:`dispatch_requests` ``(reqs)``: process a batch of requests: what
  the dispatcher publishes. ``reqs`` holds delivery ids (outbox mode) or
  requests as JSON (without a database);
* :func:`dispatch_request` ``(event, data, sender, subscriber, **kwargs)``:
  process a single request;
* :func:`sweep` ``(grace=None, limit=None)``: publish again the outbox's
  deliveries that no worker finished (run it from celery beat).

Every task message is JSON (never pickle). The delivery tasks are
``acks_late`` with ``reject_on_worker_lost``: a message is acknowledged
when its requests are done, and one whose worker process died goes back to
the queue.

Inside a worker process one event loop (uvloop) runs in a background
thread with Thorn's delivery engine (:class:`thorn.engine.DeliveryEngine`,
the outbox's own code), for the life of the process: a task hands its
chunk over and waits while it is posted concurrently (the chunks of tasks
running at once, ``--pool=threads``, side by side), and the connection
pools stay open from one task to the next. Under the eventlet and gevent
pools, whose threads are green, the loop is a plain asyncio one that runs
in the greenlet of a task waiting for its chunk (not tested here).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime
import logging
import os
import random
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celery import shared_task  # type: ignore[import-untyped]
from celery.exceptions import Retry  # type: ignore[import-untyped]
from celery.signals import (  # type: ignore[import-untyped]
    worker_process_shutdown,
    worker_shutdown,
)

from . import signals
from .app import app_or_default
from .dispatch.celery import (
    CeleryDispatcher,
    WorkerDispatcher,
    chunk_size,
    group_chunks,
    request_to_wire,
    resolve_wire,
    task_from_wire,
    uses_outbox,
    wire_with_body,
)
from .engine.core import DeliveryEngine
from .engine.store import AttemptResult, DeliveryTask
from .exceptions import ImproperlyConfigured
from .transport.client import AsyncClient, new_event_loop
from .transport.url import parse_url

__all__ = [
    "WorkerRuntime",
    "close_runtimes",
    "dispatch_request",
    "dispatch_requests",
    "publish",
    "run_here",
    "send_event",
    "sweep",
    "sweep_grace",
    "sweep_outbox",
    "worker_runtime",
]

logger = logging.getLogger(__name__)

#: Options of the delivery tasks (see the module docs).
TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "serializer": "json",
}
#: How often a task whose chunk could not be run at all (database down, the
#: loop stuck) is retried by Celery, with backoff, before it gives up.
INFRA_RETRIES = 8
#: Lease of the engine without a database: its requests are not anybody
#: else's to take, so they never expire.
NO_LEASE = 10.0**9
#: Most requests a worker process's engine holds at once (from all the
#: tasks that run at the same time).
ENGINE_BATCH = 2000
#: How often an idle engine looks for chunks (a task also wakes it).
POLL_INTERVAL = 0.02

Claim = Callable[[str, float, datetime.datetime], list[DeliveryTask]]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _redacted(url: str) -> str:
    try:
        return parse_url(url).redacted()
    except ValueError:
        return "<invalid url>"


# -- the worker process's loop and engines --------------------------------------------


def _green_threads() -> bool:
    """True under eventlet or gevent monkey patching (threads are greenlets)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return True
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher is not None and patcher.is_monkey_patched("thread"))


class _Chunk:
    """The requests of one task, waiting for their results."""

    __slots__ = ("claim", "future", "left", "results")

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.future: concurrent.futures.Future[list[AttemptResult]] = (
            concurrent.futures.Future()
        )
        self.left: set[str] = set()
        self.results: list[AttemptResult] = []

    def settle(self, delivery_id: str, result: AttemptResult | None) -> None:
        if result is not None:
            self.results.append(result)
        self.left.discard(delivery_id)
        if not self.left and not self.future.done():
            self.future.set_result(self.results)


class _QueueStore:
    """The engine's store in a worker: the chunks tasks hand over.

    Tasks :meth:`submit` chunks from their threads; the engine (running for
    the life of the process) claims them together, so the chunks of tasks
    that run at once (``--pool=threads``) are posted side by side. Without a
    database a chunk's claim hands out the tasks given; with the outbox
    (``backend``) it leases the task's delivery ids, and results are
    recorded through the Django store. A chunk is done when each of its
    requests has a result (or was given back untried).
    """

    def __init__(self, backend: Any = None) -> None:
        self.backend = backend
        self._lock = threading.Lock()
        self._pending: collections.deque[_Chunk] = collections.deque()
        self._waiting: dict[str, list[_Chunk]] = {}

    def submit(self, claim: Claim) -> concurrent.futures.Future[list[AttemptResult]]:
        chunk = _Chunk(claim)
        with self._lock:
            self._pending.append(chunk)
        return chunk.future

    def claim(
        self, *, owner: str, limit: int, lease: float, now: datetime.datetime
    ) -> list[DeliveryTask]:
        out: list[DeliveryTask] = []
        while len(out) < limit:
            with self._lock:
                if not self._pending:
                    break
                chunk = self._pending.popleft()
            try:
                tasks = chunk.claim(owner, lease, now)
            except Exception as exc:
                chunk.future.set_exception(exc)
                continue
            with self._lock:
                for task in tasks:
                    chunk.left.add(task.id)
                    waiting = self._waiting.setdefault(task.id, [])
                    waiting.append(chunk)
                    if len(waiting) == 1:  # the same request twice: posted once
                        out.append(task)
            if not tasks:
                chunk.future.set_result([])
        return out

    def _settle(
        self, ids: Sequence[str], results: Sequence[AttemptResult | None]
    ) -> None:
        with self._lock:
            found = [
                (self._waiting.pop(i, []), i, r)
                for i, r in zip(ids, results, strict=True)
            ]
        for chunks, delivery_id, result in found:
            for chunk in chunks:
                chunk.settle(delivery_id, result)

    def record(
        self, results: Sequence[AttemptResult], *, owner: str, now: datetime.datetime
    ) -> None:
        try:
            if self.backend is not None:
                self.backend.record(results, owner=owner, now=now)
        finally:
            # Stored or not (the engine tries again, then gives up), the
            # tasks go on: a delivery whose result was not stored is due
            # again when its lease runs out.
            self._settle([r.delivery_id for r in results], results)

    def release(self, delivery_ids: Sequence[str], *, owner: str) -> None:
        try:
            if self.backend is not None:
                self.backend.release(delivery_ids, owner=owner)
        finally:
            self._settle(delivery_ids, [None] * len(delivery_ids))

    def backlog(self, *, now: datetime.datetime) -> int:
        return len(self._pending)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


class _ChunkEngine(DeliveryEngine):
    """The delivery engine of a worker process, sending Thorn's signals."""

    store: _QueueStore

    def after_attempt(self, task: DeliveryTask, result: AttemptResult) -> None:
        error = result.error or None
        signals.send(
            signals.delivery_attempted, task, response=None, error=error, result=result
        )
        if result.outcome == "succeeded":
            signals.send(signals.delivery_succeeded, task, response=None, result=result)
            return
        signals.send(signals.delivery_failed, task, error=error, result=result)
        if result.outcome in ("failed", "gone"):
            signals.send(signals.delivery_exhausted, task, error=error, result=result)


class _Running:
    """An engine running on the loop for the life of the process."""

    __slots__ = ("engine", "generation", "runner", "stop")

    def __init__(
        self,
        engine: _ChunkEngine,
        generation: int,
        stop: asyncio.Event,
        runner: asyncio.Task[None],
    ) -> None:
        self.engine = engine
        self.generation = generation
        self.stop = stop
        self.runner = runner


class WorkerRuntime:
    """One worker process's event loop thread and delivery engines.

    The loop starts with the first task and lives as long as the process
    (a forked child starts its own); an engine per kind of message
    (``"outbox"``: delivery ids; ``"requests"``: requests as JSON) runs on
    it and posts the chunks that tasks :meth:`run`; :meth:`close` drains
    and stops them.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.pid = os.getpid()
        self.inline = _green_threads()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engines: dict[str, _Running] = {}

    # -- the loop --------------------------------------------------------------

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None:
                return self._loop
            if self.inline:
                # Green threads: uvloop would block the hub; the stdlib loop
                # selects through the patched select module, and runs while
                # a task waits for its chunk.
                self._loop = asyncio.new_event_loop()
                return self._loop
            loop = new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(
                target=run, name="thorn-celery-loop", daemon=True
            )
            self._thread.start()
            ready.wait()
            self._loop = loop
            return loop

    def run(self, kind: str, claim: Claim, *, timeout: float) -> list[AttemptResult]:
        """Post one chunk with ``kind``'s engine; wait for its results.

        Raises:
            TimeoutError: the chunk took longer than ``timeout`` seconds.
        """
        loop = self._start()
        running = self._engines.get(kind)
        if running is None or running.generation != self.app.settings.generation:
            running = self._call(loop, self._ensure(kind), timeout)
        future = running.engine.store.submit(claim)
        if self.inline:
            running.engine.wake()
            results: list[AttemptResult] = self._call(
                loop, asyncio.wrap_future(future, loop=loop), timeout
            )
            return results
        loop.call_soon_threadsafe(running.engine.wake)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"a chunk of Thorn deliveries took more than {timeout:g}s"
            ) from None

    def _call(
        self, loop: asyncio.AbstractEventLoop, awaitable: Any, timeout: float
    ) -> Any:
        """Run ``awaitable`` on the loop from this (task) thread."""
        if self.inline:
            with self._lock:
                return loop.run_until_complete(asyncio.wait_for(awaitable, timeout))
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop).result(
            timeout
        )

    async def _ensure(self, kind: str) -> _Running:
        """``kind``'s engine, running; made afresh when the settings changed."""
        settings = self.app.settings
        running = self._engines.get(kind)
        if running is not None and running.generation == settings.generation:
            return running
        if running is not None:
            running.stop.set()
        if kind == "outbox":
            from .django.celery_store import CeleryOutboxStore

            store = _QueueStore(CeleryOutboxStore(app=self.app))
            lease = float(settings.THORN_CELERY_LEASE)
        else:
            store = _QueueStore()
            lease = NO_LEASE
        size = int(settings.THORN_RESPONSE_MAX_SIZE)
        client = AsyncClient(
            resolver=self.app.resolver,
            ca_bundle=settings.THORN_CA_BUNDLE,
            max_response_size=size,
        )
        engine = _ChunkEngine(
            store,
            app=self.app,
            client=client,
            batch=ENGINE_BATCH,
            concurrency=int(settings.THORN_MAX_CONNECTIONS),
            per_host=int(settings.THORN_MAX_CONNECTIONS_PER_HOST),
            lease=lease,
            poll_interval=POLL_INTERVAL,
            max_response_size=size,
            excerpt_size=int(settings.THORN_ATTEMPT_EXCERPT_SIZE),
        )
        stop = asyncio.Event()
        runner = asyncio.get_running_loop().create_task(engine.run(stop))
        running = _Running(engine, settings.generation, stop, runner)
        self._engines[kind] = running
        return running

    def close(self, timeout: float = 15.0) -> None:
        """Drain the engines (requests in flight), then stop the loop."""
        loop, self._loop = self._loop, None
        if loop is None or os.getpid() != self.pid:
            return
        engines = list(self._engines.values())
        self._engines = {}

        async def shutdown() -> None:
            for running in engines:
                running.stop.set()
            await asyncio.gather(
                *(running.runner for running in engines), return_exceptions=True
            )

        if self.inline:
            loop.run_until_complete(shutdown())
            loop.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            logger.warning("Thorn's engines did not stop in %gs", timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


_runtimes: dict[int, WorkerRuntime] = {}
_runtimes_lock = threading.Lock()


def worker_runtime(app: Any = None) -> WorkerRuntime:
    """This process's :class:`WorkerRuntime` for ``app`` (default: current)."""
    app = app_or_default(app)
    runtime = _runtimes.get(id(app))
    if runtime is not None and runtime.pid == os.getpid() and runtime.app is app:
        return runtime
    with _runtimes_lock:
        runtime = _runtimes.get(id(app))
        if runtime is None or runtime.pid != os.getpid() or runtime.app is not app:
            runtime = _runtimes[id(app)] = WorkerRuntime(app)
        return runtime


def close_runtimes(**kwargs: Any) -> None:
    """Stop this process's loops (the worker is shutting down)."""
    with _runtimes_lock:
        runtimes = list(_runtimes.values())
        _runtimes.clear()
    for runtime in runtimes:
        runtime.close()


worker_process_shutdown.connect(close_runtimes, weak=False)
worker_shutdown.connect(close_runtimes, weak=False)


# -- running a chunk --------------------------------------------------------------


def publish(items: list[Any], *, countdown: float | None = None) -> None:
    """Send one :func:`dispatch_requests` message (delivery ids or requests)."""
    options: dict[str, Any] = {}
    if countdown is not None and countdown > 0:
        options["countdown"] = countdown
    dispatch_requests.apply_async((items,), **options)


def _origin(url: str) -> tuple[str, str, int]:
    try:
        return parse_url(url).origin
    except ValueError:
        return ("", "", 0)


def _retry_groups(
    retries: Sequence[tuple[Any, AttemptResult]], url_of: Callable[[Any], str]
) -> list[tuple[float, list[Any]]]:
    """Items to try again, by origin, each group with its countdown.

    A group waits for the latest of its members (never retrying one sooner
    than its policy or ``Retry-After`` says).
    """
    now = _utcnow()
    groups: dict[tuple[str, str, int], tuple[float, list[Any]]] = {}
    for item, result in retries:
        when = result.next_attempt_at
        wait = 0.0 if when is None else max((when - now).total_seconds(), 0.0)
        key = _origin(url_of(item))
        before, members = groups.get(key, (0.0, []))
        members.append(item)
        groups[key] = (max(before, wait), members)
    return list(groups.values())


def _log_outcomes(
    tasks: Sequence[DeliveryTask], results: Sequence[AttemptResult]
) -> None:
    by_id = {task.id: task for task in tasks}
    for result in results:
        if result.outcome not in ("failed", "gone"):
            continue
        task = by_id.get(result.delivery_id)
        if task is None:
            continue
        logger.warning(
            "giving up on %s %s (subscription %s, %s) after %d tries: %s",
            task.event,
            task.id,
            task.subscription or "-",
            _redacted(task.url),
            task.attempts + 1,
            result.error or result.outcome,
        )


def run_outbox_ids(ids: Sequence[str], app: Any) -> list[AttemptResult]:
    """Lease ``ids``, post the due ones, record; publish their retries.

    Retries that wait up to ``THORN_CELERY_COUNTDOWN_MAX`` go back to the
    broker with that countdown; longer waits are the sweeper's.
    """
    if not uses_outbox(app):
        raise ImproperlyConfigured(
            "a task message of delivery ids needs the outbox: run the worker "
            "with DJANGO_SETTINGS_MODULE set, 'thorn.django' installed and "
            "THORN_CELERY_OUTBOX not False"
        )
    from .django.celery_store import CeleryOutboxStore

    settings = app.settings
    runtime = worker_runtime(app)
    store = CeleryOutboxStore(app=app)
    claimed: list[DeliveryTask] = []

    def claim(owner: str, lease: float, now: datetime.datetime) -> list[DeliveryTask]:
        # In the engine's database thread (Django connections are per thread).
        claimed.extend(store.claim_ids(ids, owner=owner, lease=lease, now=now))
        return claimed

    lease = float(settings.THORN_CELERY_LEASE)
    results = runtime.run("outbox", claim, timeout=lease + 30.0)
    if len(claimed) < len(ids):
        logger.debug(
            "%d of %d deliveries were not due (finished, scheduled later, or "
            "held by another worker)",
            len(ids) - len(claimed),
            len(ids),
        )
    _log_outcomes(claimed, results)
    urls = {task.id: task.url for task in claimed}
    retries = [(r.delivery_id, r) for r in results if r.outcome == "retry"]
    longest = float(settings.THORN_CELERY_COUNTDOWN_MAX)
    for countdown, members in _retry_groups(retries, lambda key: urls[key]):
        if countdown <= longest:
            publish(members, countdown=countdown)
        else:
            logger.debug(
                "%d retries wait %.0fs, longer than THORN_CELERY_COUNTDOWN_MAX: "
                "the sweeper publishes them when due",
                len(members),
                countdown,
            )
    return results


def run_requests(
    items: Sequence[Any], app: Any, *, retry_task: Any = None
) -> list[AttemptResult]:
    """Post requests carried by a message (no database); retry the failed.

    The retries go back to the broker with a countdown from the request's
    retry policy; with ``retry_task`` (the running task) the last group is
    sent with its ``retry()``, so Celery shows the task as retried.
    """
    items = resolve_wire(items)
    tasks = [
        task_from_wire(item, where=f"request {index} of the message")
        for index, item in enumerate(items)
    ]
    ids = [task.id for task in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("a message carries the same request id twice")
    runtime = worker_runtime(app)

    def claim(owner: str, lease: float, now: datetime.datetime) -> list[DeliveryTask]:
        return tasks

    results = runtime.run(
        "requests", claim, timeout=float(app.settings.THORN_CELERY_LEASE)
    )
    _log_outcomes(tasks, results)
    by_id = {result.delivery_id: result for result in results}
    retries: list[tuple[Any, AttemptResult]] = []
    untried: list[Any] = []
    for item, task in zip(items, tasks, strict=True):
        result = by_id.get(task.id)
        if result is None:
            # Never posted (the worker is stopping): again, as it was.
            untried.append(wire_with_body(item, task.body))
        elif result.outcome == "retry":
            again = wire_with_body(item, task.body, attempts=task.attempts + 1)
            retries.append((again, result))
    if untried:
        publish(list(untried))
    groups = _retry_groups(retries, lambda item: str(item["url"]))
    for index, (countdown, members) in enumerate(groups):
        last = index == len(groups) - 1
        if last and retry_task is not None and not retry_task.request.called_directly:
            raise retry_task.retry(
                args=(members,), kwargs={}, countdown=countdown, max_retries=None
            )
        publish(members, countdown=countdown)
    return results


def run_here(items: list[Any], *, app: Any = None) -> None:
    """Run one chunk (ids or requests) in this process (the worker dispatcher)."""
    app = app_or_default(app)
    if _is_ids(items):
        run_outbox_ids(items, app)
    else:
        run_requests(items, app)


def _is_ids(reqs: Any) -> bool:
    """Whether ``reqs`` is delivery ids (True) or requests (False)."""
    if not isinstance(reqs, list):
        raise TypeError(
            f"reqs must be a list of delivery ids or requests, not "
            f"{type(reqs).__name__}"
        )
    kinds = {type(item) for item in reqs}
    if kinds <= {str}:
        return True
    if kinds <= {dict}:
        return False
    raise ValueError(
        "reqs mixes kinds: a message carries delivery ids (text, outbox mode) "
        "or requests (JSON objects, without a database), not both"
    )


def _infra_countdown(retries: int) -> float:
    return float(min(2**retries, 300)) * random.uniform(0.5, 1.0)


# -- the tasks -------------------------------------------------------------------------


@shared_task(bind=True, name="thorn.tasks.dispatch_requests", **TASK_OPTIONS)  # type: ignore[untyped-decorator]
def dispatch_requests(self: Any, reqs: list[Any], app: Any = None) -> None:
    """Process a batch of HTTP requests: delivery ids, or requests as JSON.

    ``app`` is the manual's argument; an app cannot travel in a message, so
    the worker's current Thorn app is used.
    """
    thorn_app = app_or_default(None)
    ids = _is_ids(reqs)
    if not reqs:
        return
    try:
        if ids:
            run_outbox_ids(reqs, thorn_app)
        else:
            run_requests(reqs, thorn_app, retry_task=self)
    except (ValueError, TypeError, ImproperlyConfigured):
        raise  # a message that cannot be processed: not retried
    except Retry:
        raise  # the failed requests' own retry
    except Exception as exc:
        if self.request.called_directly:
            raise
        logger.warning(
            "a chunk of %d deliveries could not be processed; Celery retries it",
            len(reqs),
            exc_info=True,
        )
        raise self.retry(
            exc=exc,
            countdown=_infra_countdown(self.request.retries),
            max_retries=INFRA_RETRIES,
        ) from exc


@shared_task(bind=True, name="thorn.tasks.dispatch_request", **TASK_OPTIONS)  # type: ignore[untyped-decorator]
def dispatch_request(
    self: Any,
    event: str,
    data: Any,
    sender: Any,
    subscriber: Mapping[str, Any],
    session: Any = None,
    app: Any = None,
    **kwargs: Any,
) -> None:
    """Process a single HTTP request.

    ``subscriber`` is a subscriber dict (``url``, ``hmac_secret``...);
    ``kwargs`` may give the request's ``id``, ``timeout``, ``retry``,
    ``retry_max``, ``retry_delay``, ``headers``, ``user_agent`` and
    ``retries``. ``session`` and ``app`` are the manual's and not used.
    """
    from .retry import RetryPolicy
    from .subscribers import Subscriber

    known = {
        "id",
        "timeout",
        "retry",
        "retry_max",
        "retry_delay",
        "headers",
        "user_agent",
        "retries",
    }
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"dispatch_request got unknown arguments: {', '.join(unknown)}")
    if not isinstance(subscriber, Mapping):
        raise TypeError("subscriber must be a subscriber dict (url, hmac_secret...)")
    thorn_app = app_or_default(None)
    settings = thorn_app.settings
    dispatcher = CeleryDispatcher(app=thorn_app)
    sub = Subscriber.from_dict(dict(subscriber))
    policy = RetryPolicy.from_settings(
        settings,
        retry=kwargs.get("retry"),
        max_retries=kwargs.get("retry_max"),
        delay=kwargs.get("retry_delay"),
    )
    request = thorn_app.Request(
        event,
        data,
        sender,
        sub,
        id=kwargs.get("id"),
        timeout=kwargs.get("timeout", settings.THORN_EVENT_TIMEOUT),
        policy=policy,
        headers=kwargs.get("headers"),
        user_agent=kwargs.get("user_agent"),
        retries=int(kwargs.get("retries", 0)),
        body=dispatcher.encode_payload(data, getattr(sub, "content_type", None)),
        recipient_validators=(),  # the worker's engine checks the URL
    )
    run_requests([request_to_wire(request)], thorn_app)


@shared_task(bind=True, name="thorn.tasks.send_event", **TASK_OPTIONS)  # type: ignore[untyped-decorator]
def send_event(
    self: Any,
    event: str,
    payload: Any,
    sender: Any,
    timeout: float | None,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Task called by process dispatching the event.

    Finds the subscribers here, in the worker, with the
    :class:`~thorn.dispatch.celery.WorkerDispatcher`: it posts the first
    chunk in this task and publishes the rest (``dispatch_requests``).
    """
    thorn_app = app_or_default(None)
    WorkerDispatcher(app=thorn_app, timeout=timeout).send(
        event, payload, sender, timeout=timeout, context=dict(context or {})
    )


@shared_task(name="thorn.tasks.sweep", ignore_result=True, serializer="json")  # type: ignore[untyped-decorator]
def sweep(grace: Any = None, limit: int | None = None) -> int:
    """Publish again what no worker finished (run it from celery beat)."""
    return sweep_outbox(grace=grace, limit=limit)[0]


def sweep_grace(app: Any, grace: Any = None) -> datetime.timedelta:
    """``grace`` (default ``THORN_CELERY_SWEEP_GRACE``) as a duration, checked.

    Raises:
        ImproperlyConfigured: without the outbox.
        ValueError: for a duration that is not one, or is negative.
    """
    from .django.store import as_timedelta

    if not uses_outbox(app):
        raise ImproperlyConfigured(
            "the sweeper works on the outbox: it needs Django with "
            "'thorn.django' installed (and THORN_CELERY_OUTBOX not False)"
        )
    setting = "THORN_CELERY_SWEEP_GRACE" if grace is None else "grace"
    value = app.settings.THORN_CELERY_SWEEP_GRACE if grace is None else grace
    period = as_timedelta(value, setting=setting)
    if period < datetime.timedelta(0):
        raise ValueError(f"{setting} must not be negative (got {value!r})")
    return period


def sweep_outbox(
    *,
    app: Any = None,
    grace: Any = None,
    limit: int | None = None,
    now: datetime.datetime | None = None,
    batch: int = 1000,
    using: str | None = None,
) -> tuple[int, int]:
    """Publish the outbox's deliveries that have been due for longer than
    ``grace`` (default ``THORN_CELERY_SWEEP_GRACE``) with no lease on them.

    Returns ``(deliveries, messages)`` published. ``limit`` caps the
    deliveries of one sweep (None: all).
    """
    from .django.celery_store import CeleryOutboxStore

    app = app_or_default(app)
    settings = app.settings
    period = sweep_grace(app, grace)
    if limit is not None and limit < 1:
        raise ValueError("limit must be 1 or more")
    events = chunk_size(settings)
    store = CeleryOutboxStore(app=app, using=using)
    deliveries = messages = 0
    seen: set[str] = set()
    while limit is None or deliveries < limit:
        size = batch if limit is None else min(batch, limit - deliveries)
        found = store.sweep(grace=period, now=now or _utcnow(), limit=size)
        # With no grace, what this sweep made due is due again at once.
        rows = [row for row in found if row[0] not in seen]
        if not rows:
            break
        seen.update(row[0] for row in rows)
        chunks = group_chunks(
            rows,
            group_of=lambda row: row[1],
            order_of=lambda row: (*_origin(row[2]), row[2]),
            events=events,
            max_requests=CeleryDispatcher.max_requests_per_message,
        )
        for chunk in chunks:
            publish([row[0] for row in chunk])
        deliveries += len(rows)
        messages += len(chunks)
        if len(found) < size:
            break
    if deliveries:
        logger.info(
            "thorn sweep: published %d deliveries again in %d messages",
            deliveries,
            messages,
        )
    return deliveries, messages
