"""A tiny HTTP server for the probes and ``/metrics``, on a port of its own.

It reads one ``GET`` request per connection, answers it and closes the
connection: the probes and Prometheus need nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

logger = logging.getLogger("thorn.server")

__all__ = ["ProbeResponse", "ProbeServer"]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[500] = "Internal Server Error"


@dataclass(frozen=True, slots=True)
class ProbeResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


ProbeHandler = Callable[[], Awaitable[ProbeResponse]]


class ProbeServer:
    """Answer ``GET <path>`` with the handler registered for that path."""

    read_timeout = 5.0
    max_head = 16 * 1024

    def __init__(
        self, routes: Mapping[str, ProbeHandler], *, host: str, port: int
    ) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=self.max_head
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            try:
                head = await asyncio.wait_for(
                    reader.readuntil(b"\r\n\r\n"), self.read_timeout
                )
            except (
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ):
                return
            response = await self._answer(head)
            reason = _REASONS.get(response.status, "Unknown")
            writer.write(
                (
                    f"HTTP/1.1 {response.status} {reason}\r\n"
                    f"Content-Type: {response.content_type}\r\n"
                    f"Content-Length: {len(response.body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode("latin-1")
                + response.body
            )
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> ProbeResponse:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3:
            return ProbeResponse(400, b"bad request\n")
        method, target, _ = parts
        path = target.split("?", 1)[0]
        handler = self.routes.get(path)
        if handler is None:
            return ProbeResponse(404, b"not found\n")
        if method not in ("GET", "HEAD"):
            return ProbeResponse(405, b"method not allowed\n")
        try:
            response = await handler()
        except Exception:
            logger.exception("thorn serve: the probe %s failed", path)
            return ProbeResponse(500, b"probe failed\n")
        if method == "HEAD":
            return ProbeResponse(response.status, b"", response.content_type)
        return response
