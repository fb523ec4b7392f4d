"""Fixtures of the Django suite: a real PostgreSQL server on request, fresh apps.

``THORN_TEST_DB=postgresql`` runs the suite on a PostgreSQL server that this
file starts for the session (from Debian's ``postgresql`` package), on a
free port of 127.0.0.1, with durability switched off because nothing here
must survive the run.

pytest-django reads the settings and sets Django up in its own
``pytest_load_initial_conftests``, before any conftest is imported; no
connection is opened until the test database is made, though. So
``pytest_configure`` below starts the server, exports its address in
``THORN_TEST_PG_*`` (for subprocesses, which read ``testproject.settings``
afresh) and writes it into the already loaded ``DATABASES`` entry.

The ``receiver`` fixture (a real HTTP receiver) comes from
``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from thorn import Thorn
from thorn import app as app_module

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
USE_POSTGRESQL = os.environ.get("THORN_TEST_DB", "sqlite") == "postgresql"

#: Test-only server options: fast, not durable, reachable on loopback only.
_FAST_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c listen_addresses=127.0.0.1"
)


def find_postgresql_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with initdb and pg_ctl (or PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgreSQLServer:
    """A throw-away PostgreSQL cluster in a temporary directory.

    As root it runs as the ``postgres`` system user (initdb and the server
    refuse to run as root), in a directory given to that user.
    """

    user = "postgres"

    def __init__(self, bindir: Path, root: Path | None = None) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.root = root or Path(tempfile.mkdtemp(prefix="thorn-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self._started = False

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def start(self) -> None:
        (self.root / "owner.pid").write_text(str(os.getpid()))
        self.sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, self.user, self.user)
            shutil.chown(self.sockets, self.user, self.user)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = f"-p {self.port} -k {self.sockets} {_FAST_OPTIONS}"
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
        )
        self._started = True

    def stop(self) -> None:
        try:
            if self._started:
                self._started = False
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    def reap_orphans(cls, bindir: Path) -> None:
        """Stop servers whose test run died without stopping them (kill -9)."""
        for owner in Path(tempfile.gettempdir()).glob("thorn-pg-*/owner.pid"):
            try:
                os.kill(int(owner.read_text()), 0)
                continue  # its test run is still going
            except ProcessLookupError:
                pass
            except (OSError, ValueError):
                continue
            orphan = cls(bindir, root=owner.parent)
            orphan._started = (orphan.data / "postmaster.pid").exists()
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                orphan.stop()

    def environ(self) -> dict[str, str]:
        return {
            "THORN_TEST_PG_HOST": "127.0.0.1",
            "THORN_TEST_PG_PORT": str(self.port),
            "THORN_TEST_PG_USER": self.user,
            "THORN_TEST_PG_NAME": "thorn",
        }


_SKIP_REASON: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _SKIP_REASON
    if not USE_POSTGRESQL or os.environ.get("THORN_TEST_PG_PORT"):
        return  # SQLite, or a server someone else started
    bindir = find_postgresql_bin()
    if bindir is None:
        message = (
            "THORN_TEST_DB=postgresql needs PostgreSQL's server programs "
            "(initdb, pg_ctl): apt-get install postgresql"
        )
        if IN_CI:
            raise pytest.UsageError(message)
        _SKIP_REASON = message
        return
    PostgreSQLServer.reap_orphans(bindir)
    server = PostgreSQLServer(bindir)
    config.add_cleanup(server.stop)
    server.start()
    os.environ.update(server.environ())
    _point_django_at(server)


def _point_django_at(server: PostgreSQLServer) -> None:
    from django.conf import settings
    from django.db import connections

    entry = settings.DATABASES["default"]
    if entry["ENGINE"] != "django.db.backends.postgresql":
        raise pytest.UsageError(
            "THORN_TEST_DB=postgresql but testproject.settings chose "
            f"{entry['ENGINE']}; run with --ds=testproject.settings"
        )
    if connections["default"].connection is not None:
        raise pytest.UsageError(
            "Django connected to the database before the test server started"
        )
    # The same dict object the connection handler holds: edit it in place.
    entry.update(
        HOST="127.0.0.1",
        PORT=str(server.port),
        USER=server.user,
        NAME="thorn",
        PASSWORD="",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if _SKIP_REASON is None:
        return
    marker = pytest.mark.skip(reason=_SKIP_REASON)
    for item in items:
        item.add_marker(marker)


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """Hash test users' passwords with MD5: PBKDF2 takes a second per user here."""
    from django.test.utils import override_settings

    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    ):
        yield


@pytest.fixture(autouse=True)
def thorn_app() -> Iterator[Thorn]:
    """A fresh Thorn app on Django's settings, current and default for the test.

    Cached settings and dispatchers do not leak between tests; the app's
    ``setting_changed`` receiver is disconnected afterwards.
    """
    previous = getattr(app_module._state, "current", None)
    previous_default = app_module._default_app
    app = Thorn(set_as_current=False)
    app.set_current()
    app.set_default()
    yield app
    app.close()
    env = app.__dict__.get("env")
    if env is not None and hasattr(env, "close"):
        env.close()
    app_module._state.current = previous
    app_module._default_app = previous_default
