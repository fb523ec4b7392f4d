"""Serve a directory of files under a URL prefix: ``serve --static`` and ``--media``.

An ASGI middleware: ``GET`` and ``HEAD`` requests whose path starts with the
prefix are answered from the directory, everything else goes to the
application. Files are read in an executor, a chunk at a time, so a large
file never holds up the event loop the delivery engine shares.

Only regular files inside the directory are served: a path with an empty,
``.`` or ``..`` segment, a directory, or a symbolic link that leads out of
the directory answers 404. Conditional requests (``If-None-Match``,
``If-Modified-Since``) answer 304; ranges are not supported (the whole file
is sent with 200).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import mimetypes
import os
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import IO, Any

__all__ = ["StaticFiles"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml")


class StaticFiles:
    """Answer ``GET``/``HEAD`` under ``prefix`` with the files in ``root``.

    Args:
        app: the ASGI application that gets every other request.
        prefix: the URL path the files live under, e.g. ``/static/``.
        root: the directory (it need not exist yet: until it does, every
            file answers 404).
        chunk_size: bytes read and sent at a time.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str,
        root: str | os.PathLike[str],
        chunk_size: int = 64 * 1024,
    ) -> None:
        if not prefix.startswith("/") or not prefix.endswith("/") or prefix == "/":
            raise ValueError(
                f"the prefix must be a path below the root that starts and ends "
                f"with '/', e.g. '/static/', not {prefix!r}"
            )
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.app = app
        self.prefix = prefix
        self.root = Path(root)
        self.chunk_size = chunk_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await _answer(
                send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")]
            )
            return
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self._find, scope["path"])
        if found is None:
            await _answer(send, 404, b"not found\n")
            return
        path, info = found
        etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'.encode("latin-1")
        modified = email.utils.formatdate(info.st_mtime, usegmt=True)
        headers = [
            (b"etag", etag),
            (b"last-modified", modified.encode("latin-1")),
        ]
        if _not_modified(scope, etag, int(info.st_mtime)):
            await _answer(send, 304, b"", headers, content_type=None)
            return
        headers += [
            (b"content-type", _content_type(path).encode("latin-1")),
            (b"content-length", str(info.st_size).encode("latin-1")),
            (b"x-content-type-options", b"nosniff"),
        ]
        if method == "HEAD":
            await send(
                {"type": "http.response.start", "status": 200, "headers": headers}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await self._send_file(path, info.st_size, headers, send)

    def _find(self, url_path: str) -> tuple[Path, os.stat_result] | None:
        """The file for ``url_path`` and its stat, or None (404)."""
        parts = url_path[len(self.prefix) :].split("/")
        for part in parts:
            if part in ("", ".", "..") or "\x00" in part or "\\" in part:
                return None
        try:
            root = self.root.resolve(strict=True)
            path = root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if not path.is_relative_to(root):
            return None  # a symbolic link out of the directory
        try:
            info = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        return path, info

    async def _send_file(
        self, path: Path, size: int, headers: list[tuple[bytes, bytes]], send: Send
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            fh: IO[bytes] = await loop.run_in_executor(None, path.open, "rb")
        except OSError:  # removed between the stat and now
            await _answer(send, 404, b"not found\n")
            return
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": headers}
            )
            # No more than the Content-Length sent, should the file grow.
            left = size
            while True:
                want = min(self.chunk_size, left)
                chunk = await loop.run_in_executor(None, fh.read, want) if want else b""
                left -= len(chunk)
                more = bool(chunk) and left > 0
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": more}
                )
                if not more:
                    return
        finally:
            await loop.run_in_executor(None, fh.close)


def _content_type(path: Path) -> str:
    kind, encoding = mimetypes.guess_type(path.name)
    if kind is None or encoding is not None:
        # An unknown type, or a compressed file (.gz): sent as it is stored.
        return "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        return f"{kind}; charset=utf-8"
    return kind


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _not_modified(scope: Scope, etag: bytes, mtime: int) -> bool:
    """RFC 9110 13.1.2 and 13.1.3: If-None-Match wins over If-Modified-Since."""
    match = _header(scope, b"if-none-match")
    if match is not None:
        tags = [t.strip().removeprefix(b"W/") for t in match.split(b",")]
        return b"*" in tags or etag in tags
    since = _header(scope, b"if-modified-since")
    if since is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return False  # an invalid date is ignored (RFC 9110 13.1.3)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return mtime <= int(when.timestamp())


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    *,
    content_type: bytes | None = b"text/plain; charset=utf-8",
) -> None:
    headers = list(extra or ())
    if content_type is not None:
        headers.append((b"content-type", content_type))
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
