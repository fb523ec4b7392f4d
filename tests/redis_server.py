"""A real Redis server for the Celery tests: a process of its own per test.

``redis_server`` is a throw-away server (no persistence) on a free port of
127.0.0.1; ``durable_redis_server`` keeps an append-only file synced on
every write, so it can be restarted without losing what it held. Without
``redis-server`` the tests skip locally and fail in CI (``CI=true``).

Use them by importing ``redis_server_fixture`` and
``durable_redis_server_fixture`` into a test module (pytest finds fixtures
imported there), then asking for ``redis_server`` / ``durable_redis_server``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def find_redis_server() -> str | None:
    """The ``redis-server`` program (PATH, then Debian's place)."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` process in a temporary directory, on 127.0.0.1."""

    def __init__(self, program: str, *, durable: bool = False) -> None:
        self.program = program
        self.durable = durable
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="thorn-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        command = [
            self.program,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.root),
            "--save",
            "",
            "--logfile",
            str(self.root / "redis.log"),
        ]
        if self.durable:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        return command

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            self._command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.command("PING"):
                    return
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.proc.returncode}: {self.log()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start: {self.log()}"
                    ) from None
                time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def client(self) -> Any:
        """A new redis-py client; close it (``with server.client() as c:``)."""
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=2
        )

    def command(self, *args: Any) -> Any:
        """One command on a connection of its own (closed afterwards)."""
        with self.client() as client:
            return client.execute_command(*args)

    def llen(self, key: str = "celery") -> int:
        return int(self.command("LLEN", key))

    def unacked(self) -> int:
        """Messages workers took and have not acknowledged yet."""
        return int(self.command("HLEN", "unacked"))

    def drained(self) -> bool:
        """Nothing queued, nothing held unacknowledged by a worker."""
        return not self.llen() and not self.unacked()

    def stop(self, *, kill: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, *, kill: bool = True, down: float = 0.0) -> None:
        """Stop (SIGKILL by default: a crash) and start again on the same port."""
        self.stop(kill=kill)
        if down:
            time.sleep(down)
        self.restarts += 1
        self.start()

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- what the broker saw -----------------------------------------------------

    def pushes(self) -> int:
        """How many list pushes (Celery/kombu messages published) so far."""
        with self.client() as client:
            stats = client.info("commandstats")
        return sum(
            int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
            for name in ("lpush", "rpush")
        )

    def queue(self, name: str = "celery") -> list[dict[str, Any]]:
        """The messages waiting in a queue, decoded (kombu's JSON envelope)."""
        import base64
        import json

        out = []
        for raw in self.command("LRANGE", name, 0, -1):
            envelope = json.loads(raw)
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            out.append(
                {
                    "task": envelope["headers"]["task"],
                    "content_type": envelope["content-type"],
                    "args": json.loads(body)[0],
                    "eta": envelope["headers"].get("eta"),
                }
            )
        return out


def _start(durable: bool) -> Iterator[RedisServer]:
    program = find_redis_server()
    if program is None:
        message = "needs redis-server (apt-get install redis-server)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(program, durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """A throw-away Redis server on 127.0.0.1 (nothing kept on disk)."""
    yield from _start(durable=False)


@pytest.fixture(name="durable_redis_server")
def durable_redis_server_fixture() -> Iterator[RedisServer]:
    """A Redis server with an append-only file synced on every write."""
    yield from _start(durable=True)
