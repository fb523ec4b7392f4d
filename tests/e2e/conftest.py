"""End-to-end fixtures: the example project served on 127.0.0.1, real Chromium.

This pytest process never configures Django. It writes a settings module
on top of the example's (a SQLite file shared by the processes, the outbox
dispatcher, no retries), migrates, creates two users, and starts
``runserver`` and ``thorn_worker`` as subprocesses; webhooks go to a real
receiver (``thorn.listener.ListenerThread``) in this process. Debian's
Chromium is driven by Python Playwright, which downloads no browser.

Without ``/usr/bin/chromium`` the tests are skipped, and fail in CI
(``CI=true``). Screenshots of the main pages go to ``$THORN_SCREENSHOTS``
(default ``build/screenshots/``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from thorn.listener import ListenerThread, Reply

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example"
CHROMIUM = Path(os.environ.get("THORN_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The users the tests sign in as (name, password).
USERS = {"alice": "alice-e2e-pw", "bob": "bob-e2e-pw"}
PR_SET_PDEATHSIG = 1
#: Seconds a subprocess may take to start or a command to finish.
START_TIMEOUT = 90.0

SETTINGS = """\
from blog.settings import *  # noqa: F403

DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": {database!r},
        "OPTIONS": {{
            "init_command": "PRAGMA journal_mode=WAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }},
    }}
}}
THORN_DISPATCHER = "outbox"
THORN_RETRY = False
# Test users: the default hasher takes a second per login on a busy machine.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Site:
    """The example project running, and what it delivers to."""

    url: str
    receiver: ListenerThread
    folder: Path
    env: dict[str, str]
    passwords: dict[str, str] = field(default_factory=lambda: dict(USERS))
    logs: dict[str, Path] = field(default_factory=dict)

    def manage(self, *args: str, timeout: float = START_TIMEOUT) -> str:
        """Run ``example/manage.py`` with the test settings; its output."""
        result = subprocess.run(
            [sys.executable, str(EXAMPLE / "manage.py"), *args],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", textwrap.dedent(code))

    def create_article(self, author: str, title: str = "The Mighty Bear") -> None:
        """A new article by ``author``: its article.created webhook is queued."""
        self.shell(
            f"""
            from django.contrib.auth import get_user_model
            from articles.models import Article

            author = get_user_model().objects.get(username={author!r})
            Article.objects.create(title={title!r}, author=author)
            """
        )

    def log_tail(self) -> str:
        parts = []
        for name, path in self.logs.items():
            if path.exists():
                parts.append(f"--- {name} ---\n{path.read_text()[-4000:]}")
        return "\n".join(parts)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when this test run dies (Linux), not linger."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(site: Site, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = site.folder / f"{name}.log"
    site.logs[name] = log
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(EXAMPLE / "manage.py"), *args],
            env=site.env,
            cwd=site.folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def _wait_until_served(site: Site, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"runserver exited\n{site.log_tail()}")
        try:
            # Our own server on 127.0.0.1, over http.
            login = site.url + "/accounts/login/"
            with urllib.request.urlopen(login, timeout=5):  # noqa: S310
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"runserver did not answer in time\n{site.log_tail()}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium: skipped without it, except in CI where that fails."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[Site]:
    """The example project on 127.0.0.1, its delivery engine, and a receiver."""
    folder = tmp_path_factory.mktemp("e2e")
    (folder / "e2esettings.py").write_text(
        SETTINGS.format(database=str(folder / "portal.sqlite3"))
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("THORN_TEST_", "DJANGO_"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(folder), str(EXAMPLE)]),
        DJANGO_SETTINGS_MODULE="e2esettings",
        BLOG_DEBUG="1",
        PYTHONUNBUFFERED="1",
    )
    port = _free_port()
    receiver = ListenerThread()
    receiver.start()
    receiver.route("/ok", Reply(status=200, body=b"received, thanks"))
    receiver.route(
        "/flaky",
        [Reply(status=500, body=b"not now: database down"), Reply(body=b"ok now")],
    )
    site = Site(f"http://127.0.0.1:{port}", receiver, folder, env)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        site.manage("migrate", "--verbosity=0")
        site.shell(
            f"""
            from django.contrib.auth import get_user_model

            for name, password in {USERS!r}.items():
                get_user_model().objects.create_user(name, password=password)
            """
        )
        server = _start(
            site, "runserver", "runserver", "--noreload", f"127.0.0.1:{port}"
        )
        processes.append(server)
        processes.append(_start(site, "worker", "thorn_worker", "--poll-interval=0.2"))
        _wait_until_served(site, server)
        yield site
    finally:
        for process in processes:
            _stop(process)
        receiver.stop()


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def _new_page(browser: Any, **options: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900}, **options)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        with contextlib.suppress(Exception):
            context.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser tab (its own cookies), JavaScript on."""
    yield from _new_page(browser)


@pytest.fixture
def plain_page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser tab with JavaScript off."""
    yield from _new_page(browser, java_script_enabled=False)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("THORN_SCREENSHOTS") or ROOT / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
