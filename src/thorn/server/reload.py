"""``serve --autoreload``: start the server again when a Python file changes.

The process the user started only supervises (:func:`supervise`): it runs
the server as a child process, the same command line with
``THORN_SERVE_RELOADER=child`` in its environment, and starts it again each
time the child exits with :data:`RESTART`. SIGTERM and SIGINT are passed on
to the child, and the supervisor exits with the child's status.

The child watches the Python files of the modules it imported
(:class:`FileWatcher`, outside the standard library and site-packages) by
polling their modification times. When one changes it stops as on SIGTERM,
so the delivery engine drains, and exits with :data:`RESTART`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import FrameType
from typing import Any, Protocol

__all__ = ["CHILD_ENV", "RESTART", "FileWatcher", "is_reloader_child", "supervise"]

#: The exit status by which a child asks to be started again.
RESTART = 3
#: Set (to ``"child"``) in the environment of the supervised server.
CHILD_ENV = "THORN_SERVE_RELOADER"


def is_reloader_child(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a server that :func:`supervise` started."""
    return (os.environ if environ is None else environ).get(CHILD_ENV) == "child"


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {
        os.path.realpath(paths[key])
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if paths.get(key)
    }
    return tuple(sorted(p.rstrip(os.sep) + os.sep for p in found))


class FileWatcher:
    """Poll the modification times of the imported modules' Python files.

    Args:
        interval: seconds between two looks.
        extra: more files to watch.
        modules: where the modules are (default: :data:`sys.modules`).
    """

    def __init__(
        self,
        *,
        interval: float = 1.0,
        extra: Iterable[str] = (),
        modules: Mapping[str, Any] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be a positive number of seconds")
        self.interval = interval
        self.extra = [os.path.abspath(p) for p in extra]
        self.modules = sys.modules if modules is None else modules
        self._skip = _library_dirs()
        self._mtimes: dict[str, int] = {}
        self._resolved: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, paths: Iterable[str]) -> None:
        """Watch ``paths`` too (say the files of a failed import's traceback),
        from their state now: a change from now on counts."""
        for name in paths:
            path = os.path.realpath(name)
            if (
                path.endswith(".py")
                and not path.startswith(self._skip)
                and path not in self.extra
            ):
                with contextlib.suppress(OSError):
                    self._mtimes.setdefault(path, os.stat(path).st_mtime_ns)
                self.extra.append(path)

    def files(self) -> set[str]:
        """The files watched now: imported ``.py`` files outside the libraries."""
        found = set(self.extra)
        resolved = self._resolved
        for module in list(self.modules.values()):
            name = getattr(module, "__file__", None)
            if not isinstance(name, str):
                continue
            try:
                path = resolved[name]
            except KeyError:
                # Resolved once per file: realpath costs a system call per
                # directory, and there are thousands of modules.
                path = os.path.realpath(name) if name.endswith(".py") else None
                if path is not None and path.startswith(self._skip):
                    path = None
                resolved[name] = path
            if path is not None:
                found.add(path)
        return found

    def changed(self) -> str | None:
        """A file changed since the last look (or None); new files are noted."""
        found: str | None = None
        mtimes = self._mtimes
        for path in self.files():
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                continue  # being saved, or removed: looked at next time
            before = mtimes.get(path)
            mtimes[path] = mtime
            if before is not None and mtime != before and found is None:
                found = path
        return found

    def start(self, on_change: Callable[[str], object]) -> None:
        """Look every :attr:`interval` in a thread; call ``on_change`` once."""
        self.changed()  # what is there now is the baseline

        def watch() -> None:
            while not self._stop.wait(self.interval):
                path = self.changed()
                if path is not None:
                    on_change(path)
                    return

        self._thread = threading.Thread(
            target=watch, name="thorn-autoreload", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)


class _Output(Protocol):
    def write(self, text: str, /) -> Any: ...

    def flush(self) -> Any: ...


def supervise(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    out: _Output | None = None,
) -> int:
    """Run ``args`` with :data:`CHILD_ENV` set, again after each :data:`RESTART`.

    Returns the child's last exit status (for a child a signal ended, 128 +
    the signal number, as a shell says it).
    """
    out = out or sys.stdout
    environ = {**(os.environ if env is None else env), CHILD_ENV: "child"}
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    previous = {
        sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        while True:
            child = subprocess.Popen(list(args), env=environ)
            if stopping:  # a signal came before the child was there to get it
                child.send_signal(signal.SIGTERM)
            code = child.wait()
            if code < 0:
                code = 128 - code
            if code != RESTART or stopping:
                return 0 if stopping and code == RESTART else code
            out.write("thorn serve: a file changed; starting again\n")
            out.flush()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
