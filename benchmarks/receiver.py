"""A fast local receiver in its own process, so it does not share the sender's GIL."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
from typing import Any


def _serve(conn: multiprocessing.connection.Connection) -> None:
    from thorn.listener import Listener
    from thorn.transport.client import new_event_loop

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    listener = Listener(record=False)
    loop.run_until_complete(listener.start())
    conn.send(listener.port)

    async def wait_for_stop() -> None:
        while not conn.poll():
            await asyncio.sleep(0.05)
        conn.recv()
        conn.send(listener.count)

    loop.run_until_complete(wait_for_stop())
    loop.run_until_complete(listener.stop())


class ReceiverProcess:
    """``with ReceiverProcess() as r: r.url("/x")``; ``r.count`` after exit."""

    def __init__(self, target: Any = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self._proc: Any = ctx.Process(
            target=target or _serve, args=(child,), daemon=True
        )
        self.port = 0
        self.count = 0

    def __enter__(self) -> ReceiverProcess:
        self._proc.start()
        if not self._parent.poll(30):
            raise RuntimeError("the benchmark receiver did not start")
        self.port = self._parent.recv()
        return self

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __exit__(self, *exc: object) -> None:
        self._parent.send("stop")
        if self._parent.poll(10):
            self.count = self._parent.recv()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
