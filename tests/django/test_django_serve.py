"""``manage.py serve``: a real subprocess of the test project, on free ports.

It runs on a SQLite file (skipped in the PostgreSQL pass); every wait is
bounded, so the tests stop by themselves.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from thorn.listener import ListenerThread
from thorn.receiver import verify_request

TESTS = Path(__file__).parents[1]
SECRET = "serve-secret-Pw7Kd2Nf9Qx4Lm1Z"
USE_POSTGRESQL = connection.vendor == "postgresql"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(USE_POSTGRESQL, reason="runs on a SQLite file in both runs"),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET ``url``: (status, body); status 0 when nothing answers."""
    try:
        assert url.startswith("http://")
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def wait_until(
    check: Callable[[], bool], proc: subprocess.Popen[str], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            out = proc.communicate(timeout=10)[0]
            raise AssertionError(f"serve exited with {proc.returncode}: {out}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Serve:
    """A ``manage.py serve`` subprocess in ``folder``."""

    def __init__(self, folder: Path, *args: str) -> None:
        self.port = free_port()
        self.probe_port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(folder), str(TESTS)])
        env["DJANGO_SETTINGS_MODULE"] = "servesettings"
        env.pop("THORN_TEST_DB", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "serve",
                f"--port={self.port}",
                f"--probe-port={self.probe_port}",
                *args,
            ],
            env=env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def app(self, path: str) -> tuple[int, str]:
        return get(f"http://127.0.0.1:{self.port}{path}")

    def probe(self, path: str) -> tuple[int, str]:
        return get(f"http://127.0.0.1:{self.probe_port}{path}")

    def wait_started(self, timeout: float = 60) -> None:
        wait_until(
            lambda: self.probe("/startup")[0] == 200, self.proc, timeout, "start"
        )

    def terminate(self, timeout: float = 30) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out = self.proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = self.proc.communicate(timeout=10)[0]
            raise AssertionError(f"serve did not stop on SIGTERM: {out}") from None
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A settings module on a SQLite file, not migrated (serve migrates it)."""
    (tmp_path / "servesettings.py").write_text(
        textwrap.dedent(
            f"""
            from testproject.settings import *  # noqa: F403

            DATABASES = {{
                "default": {{
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": {str(tmp_path / "serve.sqlite3")!r},
                    "OPTIONS": {{
                        "init_command": "PRAGMA journal_mode=WAL",
                        "transaction_mode": "IMMEDIATE",
                        "timeout": 30,
                    }},
                }}
            }}
            THORN_DISPATCHER = "outbox"
            THORN_RETRY = True
            THORN_VERSION = "1.2.3"
            """
        )
    )
    return tmp_path


@pytest.fixture
def receiver() -> Iterator[ListenerThread]:
    with ListenerThread() as listener:
        yield listener


def _shell(folder: Path, code: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(TESTS)])
    env["DJANGO_SETTINGS_MODULE"] = "servesettings"
    env.pop("THORN_TEST_DB", None)
    done = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-c", textwrap.dedent(code)],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _deliveries(serve: Serve) -> dict[str, float]:
    status, text = serve.probe("/metrics")
    assert status == 200
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "thorn_deliveries_total":
                found[sample.labels["outcome"]] = sample.value
    return found


def test_serve_starts_serves_probes_metrics_webhooks_and_stops_on_sigterm(
    folder: Path, receiver: ListenerThread
) -> None:
    serve = Serve(
        folder,
        "--command",
        "migrate --noinput",
        "--webhook-url",
        receiver.url("/lifecycle"),
        "--webhook-secret",
        SECRET,
    )
    try:
        statuses: set[int] = set()

        def started() -> bool:
            status = serve.probe("/startup")[0]
            statuses.add(status)
            return status == 200

        wait_until(started, serve.proc, 60, "the start")
        assert 400 in statuses  # while migrate ran
        assert serve.app("/admin/login/")[0] == 200
        assert serve.probe("/ready")[0] == 200
        assert serve.probe("/alive")[0] == 200
        assert serve.probe("/nothing")[0] == 404

        # The lifecycle startup webhook: once, signed, with the version.
        receiver.wait_for(1, timeout=15)
        time.sleep(0.5)
        startups = [h for h in receiver.hooks if h.json().get("type") == "startup"]
        assert len(startups) == 1
        (hook,) = startups
        assert hook.path == "/lifecycle"
        assert verify_request(hook.body, hook.headers, SECRET)
        assert hook.json()["status"] == "succeeded"
        assert hook.json()["version"] == "1.2.3"

        # An outbox event, delivered by the engine in the server's loop.
        assert _deliveries(serve).get("succeeded") == 0
        _shell(
            folder,
            f"""
            from django.db import transaction
            from thorn import Event
            from thorn.django.models import Subscriber
            Subscriber.objects.create(
                event="order.paid", url="{receiver.url("/paid")}"
            )
            with transaction.atomic():
                Event("order.paid").send({{"id": 7}})
            """,
        )
        wait_until(
            lambda: any(h.path == "/paid" for h in receiver.hooks),
            serve.proc,
            20,
            "the delivery",
        )
        wait_until(
            lambda: _deliveries(serve).get("succeeded") == 1,
            serve.proc,
            20,
            "the metric",
        )
        status, text = serve.probe("/metrics")
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {
            "thorn_deliveries",
            "thorn_attempt_duration_seconds",
            "thorn_backlog",
            "thorn_in_flight",
            "thorn_subscribers_disabled",
            "thorn_http_requests",
            "thorn_http_request_duration_seconds",
            "thorn_startup_seconds",
        } <= names
        assert 'thorn_http_requests_total{method="GET",status="200"}' in text

        code, out = serve.terminate()
        assert code == 0, out
        assert "1 delivered" in out
    finally:
        serve.kill()


def test_a_failing_command_keeps_startup_at_400_and_exits_non_zero(
    folder: Path, receiver: ListenerThread
) -> None:
    serve = Serve(
        folder,
        "--command",
        'shell -c "import time; time.sleep(1.5); 1 / 0"',
        "--webhook-url",
        receiver.url("/lifecycle"),
        "--webhook-secret",
        SECRET,
    )
    try:
        statuses: list[int] = []
        deadline = time.monotonic() + 60
        while serve.proc.poll() is None:
            assert time.monotonic() < deadline, "serve did not stop"
            statuses.append(serve.probe("/startup")[0])
            time.sleep(0.05)
        out = serve.proc.communicate(timeout=10)[0]
        assert serve.proc.returncode != 0, out
        assert 400 in statuses
        assert 200 not in statuses
        assert serve.app("/admin/login/")[0] == 0  # never served
        (hook,) = receiver.wait_for(1, timeout=10)
        assert hook.json()["type"] == "startup"
        assert hook.json()["status"] == "failed"
        assert "ZeroDivisionError" in hook.json()["error_trace"]
        assert verify_request(hook.body, hook.headers, SECRET)
    finally:
        serve.kill()


def test_check_migrations_fails_the_start_when_some_are_unapplied(
    folder: Path,
) -> None:
    serve = Serve(folder, "--check-migrations", "--no-probe")
    try:
        out = serve.proc.communicate(timeout=60)[0]
        assert serve.proc.returncode != 0, out
        assert "unapplied migrations" in out
    finally:
        serve.kill()


def test_readiness_over_the_threshold_and_max_lifetime(
    folder: Path, receiver: ListenerThread
) -> None:
    serve = Serve(
        folder,
        "--command",
        "migrate --noinput",
        "--max-lifetime",
        "4",
        "--no-metrics",
        "--req-queue-len=-1",
        "--webhook-url",
        receiver.url("/lifecycle"),
    )
    try:
        serve.wait_started()
        assert serve.probe("/metrics")[0] == 404
        # Nothing is over -1 but nothing is under it either: not ready.
        assert serve.probe("/ready")[0] == 400
        assert serve.probe("/ready")[0] == 400
        assert serve.probe("/alive")[0] == 200
        receiver.wait_for(2, timeout=15)
        time.sleep(0.5)
        kinds = sorted(h.json()["type"] for h in receiver.hooks)
        assert kinds == ["readiness", "startup"]  # readiness on the change only
        (ready,) = [h for h in receiver.hooks if h.json()["type"] == "readiness"]
        assert ready.json()["status"] == "failed"
        out = serve.proc.communicate(timeout=60)[0]
        assert serve.proc.returncode == 0, out
    finally:
        serve.kill()
