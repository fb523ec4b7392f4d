"""A store that runs in a process of its own: the engine's Python halves.

The engine is bound by one interpreter lock: its event loop posts, and its
database thread turns rows into tasks and results into rows. With
:class:`ProcessStore` the second half runs in a child process, and the
engine's thread only waits on a pipe (which holds no lock) and rebuilds
plain tuples. On a machine with a core to spare the engine then posts at
nearly its database-free speed (see docs/outbox.md, "Speed").

The child is started with ``spawn`` (a clean interpreter: no inherited
connections or threads) and calls ``factory(*args, **kwargs)`` to make the
real store, so the factory and its arguments must be picklable: a
module-level function or class. :func:`thorn.django.worker.worker_store` is
the one for Django.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import operator
import pickle
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .store import AttemptResult, DeliveryTask, OutboxStore

__all__ = ["ProcessStore", "StoreProcessError"]

logger = logging.getLogger(__name__)

_TASK_FIELDS = tuple(DeliveryTask.__dataclass_fields__)
_RESULT_FIELDS = tuple(AttemptResult.__dataclass_fields__)
#: A dataclass instance as the tuple of its fields, in C.
_task_row = operator.attrgetter(*_TASK_FIELDS)
_result_row = operator.attrgetter(*_RESULT_FIELDS)
_PROTOCOL = pickle.HIGHEST_PROTOCOL
# pickle is safe here: the pipe joins this process to the child it spawned,
# nobody else can write to it (hence the S301 waivers below).


class StoreProcessError(RuntimeError):
    """The store's process died, or could not be started."""


class _Failure:
    """An exception raised in the child, carried back to the caller."""

    __slots__ = ("error", "text")

    def __init__(self, error: BaseException | None, text: str) -> None:
        self.error = error
        self.text = text


def _serve(conn: Any, factory: Callable[..., OutboxStore], args: Any, kw: Any) -> None:
    """The child: make the store, then answer calls until told to close."""
    # The engine's process decides when this one ends: by "close", or by
    # going away (the pipe's end). A Ctrl-C in a terminal, or a SIGTERM to
    # the whole group (systemd's default), would otherwise kill the store
    # while the engine drains and still has tries to record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        store = factory(*args, **kw)
    except BaseException as exc:
        conn.send_bytes(pickle.dumps(_failure(exc), _PROTOCOL))
        return
    conn.send_bytes(pickle.dumps(None, _PROTOCOL))
    while True:
        try:
            name, args, kw = pickle.loads(conn.recv_bytes())  # noqa: S301
        except (EOFError, OSError):
            break  # the engine's process is gone
        try:
            if name == "claim":
                answer: Any = [_task_row(t) for t in store.claim(**kw)]
            elif name == "record":
                results = [AttemptResult(*row) for row in args[0]]
                store.record(results, **kw)
                answer = None
            elif name == "close":
                close = getattr(store, "close", None)
                answer = close() if callable(close) else None
            else:
                answer = getattr(store, name)(*args, **kw)
        except BaseException as exc:
            answer = _failure(exc)
        conn.send_bytes(pickle.dumps(answer, _PROTOCOL))
        if name == "close":
            break


def _failure(exc: BaseException) -> _Failure:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    try:
        pickle.loads(pickle.dumps(exc, _PROTOCOL))  # noqa: S301
    except Exception:
        return _Failure(None, text)
    return _Failure(exc, text)


class ProcessStore:
    """An :class:`~thorn.engine.store.OutboxStore` whose work runs in a child.

    Args:
        factory: makes the real store in the child (picklable).
        *args, **kwargs: given to ``factory``.
        start_timeout: seconds to wait for the child to make its store.

    Calls are made one at a time (the engine makes them from one thread).
    A child that dies is started again at the next call; the call that was
    running raises :class:`StoreProcessError` (the engine tries a record
    again, and a claim at its next poll: a delivery whose claim was lost
    with the child is claimed again when its lease runs out).
    """

    def __init__(
        self,
        factory: Callable[..., OutboxStore],
        /,
        *args: Any,
        start_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        try:
            pickle.dumps((factory, args, kwargs), _PROTOCOL)
        except Exception as exc:
            raise TypeError(
                "ProcessStore gives its factory and arguments to a new process: "
                "they must pickle (use a module-level function or class): "
                f"{exc}"
            ) from exc
        self.factory = factory
        self.args = args
        self.kwargs = kwargs
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._conn: Any = None
        self._process: Any = None

    # -- the OutboxStore protocol ----------------------------------------

    def claim(
        self, *, owner: str, limit: int, lease: float, now: datetime.datetime
    ) -> list[DeliveryTask]:
        rows = self._call(
            "claim", (), {"owner": owner, "limit": limit, "lease": lease, "now": now}
        )
        return [DeliveryTask(*row) for row in rows]

    def record(
        self, results: Sequence[AttemptResult], *, owner: str, now: datetime.datetime
    ) -> None:
        rows = [_result_row(r) for r in results]
        self._call("record", (rows,), {"owner": owner, "now": now})

    def release(self, delivery_ids: Sequence[str], *, owner: str) -> None:
        self._call("release", (list(delivery_ids),), {"owner": owner})

    def backlog(self, *, now: datetime.datetime) -> int:
        count: int = self._call("backlog", (), {"now": now})
        return count

    def start(self) -> None:
        """Start the child now rather than at the first call (no-op if it runs).

        Raises :class:`StoreProcessError` if it cannot make its store.
        """
        with self._lock:
            if self._conn is None:
                self._start()

    def close(self) -> None:
        """Close the child's store and let the child end."""
        with self._lock:
            conn, process = self._conn, self._process
            self._conn = self._process = None
            if conn is None:
                return
            try:
                conn.send_bytes(pickle.dumps(("close", (), {}), _PROTOCOL))
                conn.recv_bytes()
            except (EOFError, OSError):
                pass
            finally:
                conn.close()
                process.join(self.start_timeout)
                if process.is_alive():
                    process.kill()
                    process.join()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """Any other method of the child's store, called there."""
        if name.startswith("_") or name in ("factory", "args", "kwargs"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, args, kwargs)

        return call

    @property
    def process(self) -> Any:
        """The child (a ``multiprocessing`` process; None while none runs)."""
        return self._process

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first call)."""
        process = self._process
        return None if process is None else process.pid

    # -- the pipe ---------------------------------------------------------

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        process = ctx.Process(
            target=_serve,
            args=(theirs, self.factory, self.args, self.kwargs),
            name="thorn-store",
            daemon=True,
        )
        process.start()
        theirs.close()
        try:
            if not ours.poll(self.start_timeout):
                raise StoreProcessError(
                    f"the store's process did not start in {self.start_timeout:g}s"
                )
            answer = pickle.loads(ours.recv_bytes())  # noqa: S301
        except (EOFError, OSError) as exc:
            process.join(1.0)
            raise StoreProcessError(
                f"the store's process ended as it started (exit code "
                f"{process.exitcode})"
            ) from exc
        except BaseException:
            process.kill()
            ours.close()
            raise
        if isinstance(answer, _Failure):
            process.join(self.start_timeout)
            ours.close()
            raise StoreProcessError(
                f"the store's process could not make its store: {answer.text}"
            ) from answer.error
        self._conn, self._process = ours, process

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            if self._conn is None:
                self._start()
            conn = self._conn
            try:
                conn.send_bytes(pickle.dumps((name, args, kwargs), _PROTOCOL))
                answer = pickle.loads(conn.recv_bytes())  # noqa: S301
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                process = self._process
                self._conn = self._process = None
                conn.close()
                process.join(1.0)
                if process.is_alive():
                    process.kill()
                    process.join()
                logger.warning(
                    "thorn: the store's process died during %s() (exit code %s); "
                    "it is started again at the next call",
                    name,
                    process.exitcode,
                )
                raise StoreProcessError(
                    f"the store's process died during {name}() "
                    f"(exit code {process.exitcode})"
                ) from exc
        if isinstance(answer, _Failure):
            if answer.error is not None:
                raise answer.error
            raise StoreProcessError(
                f"{name}() failed in the store's process: {answer.text}"
            )
        return answer
