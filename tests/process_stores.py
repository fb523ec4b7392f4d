"""Stores for ProcessStore tests: module-level, so a spawned child can
unpickle them by name."""

from __future__ import annotations

import os
import threading
from typing import NoReturn

from thorn.engine.memory import MemoryStore


class Unpicklable(Exception):
    """An exception that cannot cross a pipe (it holds a lock)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.lock = threading.Lock()


class TrickyStore(MemoryStore):
    """A MemoryStore with ways to fail."""

    def __init__(self, label: str = "") -> None:
        super().__init__()
        self.label = label

    def child_pid(self) -> int:
        return os.getpid()

    def describe(self) -> str:
        return self.label

    def refuse(self) -> NoReturn:
        raise ValueError("refused: no such delivery")

    def explode(self) -> NoReturn:
        raise Unpicklable("exploded with a lock in hand")

    def die(self) -> NoReturn:
        os._exit(3)


def broken_store() -> NoReturn:
    """A factory that cannot make its store."""
    raise RuntimeError("the database is not configured")
