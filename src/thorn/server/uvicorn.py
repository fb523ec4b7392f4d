"""A uvicorn server whose signals are handled by whoever runs it."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn


class QuietSignalsServer(uvicorn.Server):
    """``uvicorn.Server`` without its own SIGTERM/SIGINT handling.

    uvicorn installs handlers while it serves and raises the caught signal
    again once it is done, which would end the process with that signal
    rather than let the caller drain the delivery engine and exit 0. The
    caller stops it by setting :attr:`should_exit` instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield
