"""``manage.py serve --static --media`` and ``--autoreload``, in real processes."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_django_serve import (  # the serve harness
    Serve,
    django_env,
    lifecycle,
    serve_database,
    wait_until,
    write_settings,
)

from thorn.listener import ListenerThread

pytestmark = pytest.mark.slow


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A folder with ``servesettings``, on a database of the test's own."""
    with serve_database(tmp_path) as database:
        yield write_settings(tmp_path, database)


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with the path sent as it is (no client-side clean-up)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            body,
        )
    finally:
        conn.close()


def test_static_and_media_files_are_served_and_nothing_outside_them(
    folder: Path,
) -> None:
    static = folder / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "site.css").write_text("body { color: #333 }\n")
    big = os.urandom(300 * 1024)  # several chunks
    (static / "big.bin").write_bytes(big)
    (folder / "media").mkdir()
    (folder / "media" / "report.txt").write_text("uploaded\n")
    (folder / "private.txt").write_text("not to be served\n")
    (static / "escape.txt").symlink_to(folder / "private.txt")
    serve = Serve(
        folder, "--command", "migrate --noinput", "--static", "--media", "--no-metrics"
    )
    try:
        serve.wait_started()
        port = serve.port
        status, headers, body = request(port, "GET", "/static/css/site.css")
        assert status == 200
        assert body == b"body { color: #333 }\n"
        assert headers["content-type"] == "text/css; charset=utf-8"
        assert headers["content-length"] == str(len(body))
        assert headers["x-content-type-options"] == "nosniff"
        etag, modified = headers["etag"], headers["last-modified"]

        assert request(port, "GET", "/static/big.bin")[2] == big
        status, headers, body = request(port, "HEAD", "/static/css/site.css")
        assert (status, body, headers["content-length"]) == (200, b"", "21")
        # Conditional requests: unchanged, 304 without a body.
        status, _, body = request(
            port, "GET", "/static/css/site.css", {"If-None-Match": etag}
        )
        assert (status, body) == (304, b"")
        status, _, body = request(
            port, "GET", "/static/css/site.css", {"If-Modified-Since": modified}
        )
        assert (status, body) == (304, b"")
        assert (
            request(port, "GET", "/static/css/site.css", {"If-None-Match": '"x"'})[0]
            == 200
        )
        status, headers, _ = request(port, "POST", "/static/css/site.css")
        assert status == 405
        assert headers["allow"] == "GET, HEAD"

        status, _, body = request(port, "GET", "/media/report.txt")
        assert (status, body) == (200, b"uploaded\n")

        # Nothing outside the directories, and no directories.
        for path in (
            "/static/../private.txt",
            "/static/%2e%2e/private.txt",
            "/static/css/../../private.txt",
            "/static/escape.txt",
            "/static/css",
            "/static/css/",
            "/static/missing.css",
            "/media/../servesettings.py",
        ):
            status, _, body = request(port, "GET", path)
            assert status == 404, path
            assert b"not to be served" not in body

        # The rest is still Django's.
        assert serve.app("/admin/login/")[0] == 200
        code, out = serve.terminate()
        assert code == 0, out
    finally:
        serve.kill()


def test_static_needs_a_static_root(folder: Path) -> None:
    (folder / "norootsettings.py").write_text(
        "from servesettings import *  # noqa: F403\nSTATIC_ROOT = None\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "django", "serve", "--static", "--no-probe"],
        env=django_env(folder, "norootsettings"),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "--static needs STATIC_ROOT" in done.stderr


def test_autoreload_starts_the_server_again_when_a_python_file_changes(
    folder: Path, receiver: ListenerThread
) -> None:
    settings = folder / "servesettings.py"
    serve = Serve(
        folder,
        "--autoreload",
        "--command",
        "migrate --noinput",
        "--webhook-url",
        receiver.url("/lifecycle"),
    )
    try:
        serve.wait_started()
        receiver.wait_for(1, timeout=15)
        (first,) = lifecycle(receiver, "startup")
        assert first.json()["version"] == "1.2.3"
        assert first.json()["pid"] != serve.proc.pid  # a child serves

        # Edit a watched module: the settings (any imported project file is).
        settings.write_text(settings.read_text() + '\nTHORN_VERSION = "2.0.0"\n')
        wait_until(
            lambda: len(lifecycle(receiver, "startup")) == 2,
            serve.proc,
            60,
            "the second start",
        )
        second = lifecycle(receiver, "startup")[1].json()
        assert second["status"] == "succeeded"
        assert second["version"] == "2.0.0"
        assert second["pid"] not in (first.json()["pid"], serve.proc.pid)
        serve.wait_started()
        assert serve.app("/admin/login/")[0] == 200
        with pytest.raises(ProcessLookupError):
            os.kill(first.json()["pid"], 0)  # the first child is gone

        code, out = serve.stop(signal.SIGTERM)
        assert code == 0, out
        assert "servesettings.py changed; stopping to start again" in out
        assert "a file changed; starting again" in out
        with pytest.raises(ProcessLookupError):
            os.kill(second["pid"], 0)  # SIGTERM reached the child too
    finally:
        serve.kill()


def test_autoreload_waits_for_a_fix_after_a_failed_start(
    folder: Path, receiver: ListenerThread
) -> None:
    broken = folder / "servecommand.py"
    broken.write_text("RESULT = 1 / 0\n")
    # A management command that imports the broken module: the start fails.
    commands = folder / "servecommands" / "management" / "commands"
    commands.mkdir(parents=True)
    for package in (folder / "servecommands", commands.parent, commands):
        (package / "__init__.py").write_text("")
    (commands / "importbroken.py").write_text(
        textwrap.dedent(
            """
            from django.core.management.base import BaseCommand


            class Command(BaseCommand):
                def handle(self, *args, **options):
                    import servecommand  # noqa: F401
            """
        )
    )
    settings = folder / "servesettings.py"
    settings.write_text(
        settings.read_text() + '\nINSTALLED_APPS = [*INSTALLED_APPS, "servecommands"]\n'
    )
    serve = Serve(
        folder,
        "--autoreload",
        "--command",
        "migrate --noinput",
        "--command",
        "importbroken",
        "--webhook-url",
        receiver.url("/lifecycle"),
    )
    try:
        (failed,) = receiver.wait_for(1, timeout=60)
        assert failed.json()["status"] == "failed"
        assert "ZeroDivisionError" in failed.json()["error_trace"]
        assert serve.proc.poll() is None  # waiting for a change
        assert serve.probe("/startup")[0] == 400
        broken.write_text("RESULT = 1\n")
        serve.wait_started()
        receiver.wait_for(2, timeout=15)
        started = lifecycle(receiver, "startup")
        assert [h.json()["status"] for h in started] == ["failed", "succeeded"]
        code, out = serve.stop(signal.SIGTERM)
        assert code == 0, out
        assert "waiting for a file to change" in out
        assert "servecommand.py changed; stopping to start again" in out
    finally:
        serve.kill()
