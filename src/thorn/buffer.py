"""``buffer_events``: collect events in a block and dispatch them together."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from .app import app_or_default

__all__ = ["buffer_events"]


class buffer_events:
    """Context that enables event buffering.

    The buffer is flushed when the outermost context exits, or explicitly
    with :meth:`flush` (which sends the events of every nested context)::

        with buffer_events() as buffer:
            ...
            buffer.flush()  # <-- flush here.
        # <-- implicit flush here.

    With ``flush_freq`` and/or ``flush_timeout``, :meth:`maybe_flush` flushes
    every ``flush_freq`` calls or when ``flush_timeout`` seconds passed since
    the last flush. Events are flushed on exit even when the block raises:
    they describe things that already happened.
    """

    def __init__(
        self,
        flush_freq: int | None = None,
        flush_timeout: float | None = None,
        app: Any = None,
    ) -> None:
        if flush_freq is not None and flush_freq < 1:
            raise ValueError("flush_freq must be 1 or more")
        if flush_timeout is not None and flush_timeout <= 0:
            raise ValueError("flush_timeout must be more than 0 seconds")
        self.app = app_or_default(app)
        self.flush_freq = flush_freq
        self.flush_timeout = flush_timeout
        self._calls = 0
        self._last_flush = time.monotonic()

    def __enter__(self) -> buffer_events:
        self.app.enable_buffer(owner=self)
        self._last_flush = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.app.flush_buffer(owner=self)
        finally:
            self.app.disable_buffer(owner=self)

    def flush(self) -> None:
        """Send every buffered event now (of all nested contexts)."""
        self.app.flush_buffer()
        self._calls = 0
        self._last_flush = time.monotonic()

    def should_flush(self) -> bool:
        if self.flush_freq is not None and self._calls >= self.flush_freq:
            return True
        return (
            self.flush_timeout is not None
            and time.monotonic() - self._last_flush >= self.flush_timeout
        )

    def maybe_flush(self) -> bool:
        """Count a call; flush if ``flush_freq`` or ``flush_timeout`` says so."""
        self._calls += 1
        if self.should_flush():
            self.flush()
            return True
        return False
