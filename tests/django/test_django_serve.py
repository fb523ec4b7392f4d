"""``manage.py serve``: a real subprocess of the test project, on free ports.

It runs on a SQLite file, or in the PostgreSQL run on a database of its own
on the test server; every wait is bounded, so the tests stop by themselves.
The helpers here (``Serve``, ``serve_database``, ``write_settings``) serve
the other ``test_django_serve_*`` modules too. ``receiver`` (a real HTTP
receiver) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from thorn.listener import Hook, ListenerThread, Reply
from thorn.receiver import verify_request

TESTS = Path(__file__).parents[1]
SECRET = "serve-secret-Pw7Kd2Nf9Qx4Lm1Z"
USE_POSTGRESQL = os.environ.get("THORN_TEST_DB", "sqlite") == "postgresql"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(
    url: str, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """GET ``url``: (status, body); status 0 when nothing answers."""
    try:
        assert url.startswith("http://")
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
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


def django_env(folder: Path, settings: str = "servesettings") -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(TESTS)])
    env["DJANGO_SETTINGS_MODULE"] = settings
    env.pop("THORN_TEST_DB", None)
    return env


class Serve:
    """A ``manage.py serve`` subprocess in ``folder``."""

    def __init__(
        self, folder: Path, *args: str, settings: str = "servesettings"
    ) -> None:
        self.port = free_port()
        self.probe_port = free_port()
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
            env=django_env(folder, settings),
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def app(self, path: str, **kwargs: Any) -> tuple[int, str]:
        return get(f"http://127.0.0.1:{self.port}{path}", **kwargs)

    def probe(self, path: str) -> tuple[int, str]:
        return get(f"http://127.0.0.1:{self.probe_port}{path}")

    def wait_started(self, timeout: float = 60) -> None:
        wait_until(
            lambda: self.probe("/startup")[0] == 200, self.proc, timeout, "start"
        )

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30
    ) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out = self.proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = self.proc.communicate(timeout=10)[0]
            raise AssertionError(f"serve did not stop on {sig.name}: {out}") from None
        return self.proc.returncode, out

    def terminate(self, timeout: float = 30) -> tuple[int, str]:
        return self.stop(signal.SIGTERM, timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@contextlib.contextmanager
def serve_database(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A database of the test's own: a SQLite file, or one on the PostgreSQL
    server of the run (created empty, dropped afterwards)."""
    if not USE_POSTGRESQL:
        yield {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(tmp_path / "serve.sqlite3"),
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
        return
    import psycopg
    from psycopg import sql

    server = {
        "host": os.environ["THORN_TEST_PG_HOST"],
        "port": int(os.environ["THORN_TEST_PG_PORT"]),
        "user": os.environ["THORN_TEST_PG_USER"],
    }
    name = f"thorn_serve_{secrets.token_hex(6)}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": server["host"],
            "PORT": str(server["port"]),
            "USER": server["user"],
            "PASSWORD": "",
            "NAME": name,
        }
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


def write_settings(folder: Path, database: dict[str, Any]) -> Path:
    """``servesettings``: the test project on ``database``, not migrated."""
    (folder / "servesettings.py").write_text(
        textwrap.dedent(
            f"""
            from testproject.settings import *  # noqa: F403

            DATABASES = {{"default": {database!r}}}
            INSTALLED_APPS = [*INSTALLED_APPS, "testproject.serve_checks"]
            THORN_DISPATCHER = "outbox"
            THORN_RETRY = True
            THORN_VERSION = "1.2.3"
            THORN_TEST_UNHEALTHY_FILE = {str(folder / "unhealthy")!r}
            THORN_TEST_SIGNAL_LOG = {str(folder / "signals.log")!r}
            STATIC_ROOT = {str(folder / "static")!r}
            MEDIA_ROOT = {str(folder / "media")!r}
            MEDIA_URL = "/media/"
            """
        )
    )
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A folder with ``servesettings``, on a database of the test's own."""
    with serve_database(tmp_path) as database:
        yield write_settings(tmp_path, database)


def shell(folder: Path, code: str) -> str:
    """Run ``code`` in ``manage.py shell`` on the test's settings: its output."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "shell",
            "-v",
            "0",
            "-c",
            textwrap.dedent(code),
        ],
        env=django_env(folder),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def metric_samples(
    serve: Serve,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, parsed by the Prometheus client's parser."""
    status, text = serve.probe("/metrics")
    assert status == 200
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def deliveries(serve: Serve) -> dict[str, float]:
    return {
        dict(labels)["outcome"]: value
        for (name, labels), value in metric_samples(serve).items()
        if name == "thorn_deliveries_total"
    }


def lifecycle(receiver: ListenerThread, kind: str) -> list[Hook]:
    return [h for h in receiver.hooks if h.json().get("type") == kind]


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
        startups = lifecycle(receiver, "startup")
        assert len(startups) == 1
        (hook,) = startups
        assert hook.path == "/lifecycle"
        assert verify_request(hook.body, hook.headers, SECRET)
        assert hook.json()["status"] == "succeeded"
        assert hook.json()["version"] == "1.2.3"

        # An outbox event, delivered by the engine in the server's loop.
        before = metric_samples(serve)
        assert deliveries(serve).get("succeeded") == 0
        assert before[("thorn_attempt_duration_seconds_count", ())] == 0
        shell(
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
            lambda: deliveries(serve).get("succeeded") == 1,
            serve.proc,
            20,
            "the metric",
        )
        after = metric_samples(serve)
        assert after[("thorn_attempt_duration_seconds_count", ())] == 1
        assert after[("thorn_backlog", ())] == 0
        assert after[("thorn_in_flight", ())] == 0
        assert after[("thorn_subscribers_disabled", ())] == 0
        assert after[("thorn_startup_seconds", ())] > 0
        assert after[("thorn_http_requests_in_flight", ())] == 0
        assert (
            after[("thorn_http_requests_total", (("method", "GET"), ("status", "200")))]
            >= 1
        )
        _, text = serve.probe("/metrics")
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {
            "thorn_deliveries",
            "thorn_attempt_duration_seconds",
            "thorn_backlog",
            "thorn_in_flight",
            "thorn_subscribers_disabled",
            "thorn_http_requests",
            "thorn_http_requests_in_flight",
            "thorn_http_request_duration_seconds",
            "thorn_startup_seconds",
        } <= names

        code, out = serve.terminate()
        assert code == 0, out
        assert "1 delivered" in out
        assert SECRET not in out
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


def test_readiness_over_the_threshold_max_lifetime_and_a_failing_receiver(
    folder: Path, receiver: ListenerThread
) -> None:
    receiver.route("/lifecycle", Reply(status=503))
    # Credentials and a query may be secrets: the logs leave them out.
    url = receiver.url("/lifecycle?token=tok-Zq8Wm3").replace(
        "//", "//ops:pw-Hn4Rx7@", 1
    )
    serve = Serve(
        folder,
        "--command",
        "migrate --noinput",
        "--max-lifetime",
        "4",
        "--no-metrics",
        "--req-queue-len=-1",
        "--webhook-url",
        url,
        "--webhook-secret",
        SECRET,
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
        (ready,) = lifecycle(receiver, "readiness")
        assert ready.json()["status"] == "failed"
        out = serve.proc.communicate(timeout=60)[0]
        assert serve.proc.returncode == 0, out
        # The receiver answered 503: logged, without the secrets.
        assert (
            f"the thorn.startup webhook to {receiver.url('/lifecycle')} failed: "
            f"127.0.0.1:{receiver.port} answered 503 Service Unavailable"
        ) in out
        for secret in (SECRET, "tok-Zq8Wm3", "pw-Hn4Rx7"):
            assert secret not in out
    finally:
        serve.kill()


def test_lifecycle_webhooks_reach_the_receiver_once_per_change(
    folder: Path, receiver: ListenerThread
) -> None:
    """Readiness flips on the delivery backlog, liveness on a ``thorn`` check.

    The engine takes one delivery at a time (``--batch 1 --concurrency 1``)
    and the receiver holds it until the test lets go, so the backlog stays
    at 4 over a threshold of 2 for as long as the test needs.
    """
    gate = threading.Event()

    def hold(hook: Hook) -> Reply:
        gate.wait(60)
        return Reply()

    slow = ListenerThread(handler=hold)
    slow.start()
    serve = Serve(
        folder,
        "--command",
        "migrate --noinput",
        "--batch",
        "1",
        "--concurrency",
        "1",
        "--per-host",
        "1",
        "--poll-interval",
        "0.1",
        "--req-queue-len",
        "2",
        "--webhook-url",
        receiver.url("/lifecycle"),
        "--webhook-secret",
        SECRET,
    )
    try:
        serve.wait_started()
        receiver.wait_for(1, timeout=15)
        assert serve.probe("/ready")[0] == 200
        assert serve.probe("/alive")[0] == 200
        shell(
            folder,
            f"""
            from django.db import transaction
            from thorn import Event
            from thorn.django.models import Subscriber
            Subscriber.objects.create(event="order.paid", url="{slow.url("/held")}")
            with transaction.atomic():
                for i in range(5):
                    Event("order.paid", timeout=60).send({{"id": i}})
            """,
        )
        # One delivery in flight, four due: over the threshold, not ready.
        wait_until(
            lambda: metric_samples(serve)[("thorn_in_flight", ())] == 1,
            serve.proc,
            20,
            "the first delivery in flight",
        )
        samples = metric_samples(serve)
        assert samples[("thorn_backlog", ())] == 4
        for _ in range(3):
            status, text = serve.probe("/ready")
            assert status == 400, text
            assert "backlog 4" in text

        # Unhealthy: a check tagged "thorn" fails.
        (folder / "unhealthy").write_text("")
        for _ in range(3):
            status, text = serve.probe("/alive")
            assert status == 500
            assert "testproject.E001" in text
            assert "the test made this server unhealthy" in text
        (folder / "unhealthy").unlink()
        assert serve.probe("/alive")[0] == 200
        assert serve.probe("/alive")[0] == 200

        gate.set()
        wait_until(
            lambda: serve.probe("/ready")[0] == 200,
            serve.proc,
            30,
            "ready again",
        )
        assert serve.probe("/ready")[0] == 200
        wait_until(lambda: slow.listener.count == 5, serve.proc, 30, "5 deliveries")
        wait_until(lambda: len(receiver.hooks) == 5, serve.proc, 15, "5 webhooks")
        time.sleep(0.5)  # nothing more arrives
        assert len(receiver.hooks) == 5
        for hook in receiver.hooks:
            assert verify_request(hook.body, hook.headers, SECRET)
        changes = [(h.json()["type"], h.json()["status"]) for h in receiver.hooks]
        assert changes == [
            ("startup", "succeeded"),
            ("readiness", "failed"),
            ("liveness", "failed"),
            ("liveness", "succeeded"),
            ("readiness", "succeeded"),
        ]
        (failed,) = [
            h.json()
            for h in receiver.hooks
            if h.json()["type"] == "liveness" and h.json()["status"] == "failed"
        ]
        assert "testproject.E001" in failed["error_trace"]
        assert failed["version"] == "1.2.3"
        code, out = serve.terminate()
        assert code == 0, out
        assert "5 delivered" in out
        assert "engine batch 1, concurrency 1, 1 per host" in out
        assert "gc threshold 20000" in out
    finally:
        gate.set()
        serve.kill()
        slow.stop()


@pytest.mark.parametrize(
    ("sig", "extra"),
    [
        (signal.SIGTERM, ()),
        (signal.SIGINT, ()),
        # The store in a process of its own: the try is still recorded
        # there during the drain, and the signals still sent here.
        (signal.SIGTERM, ("--store-process",)),
    ],
    ids=["SIGTERM", "SIGINT", "SIGTERM-store-process"],
)
def test_a_stop_signal_drains_the_delivery_in_flight(
    folder: Path,
    receiver: ListenerThread,
    sig: signal.Signals,
    extra: tuple[str, ...],
) -> None:
    receiver.route("/slow", Reply(delay=2.0))
    serve = Serve(folder, "--command", "migrate --noinput", "--no-metrics", *extra)
    try:
        serve.wait_started()
        shell(
            folder,
            f"""
            from django.db import transaction
            from thorn import Event
            from thorn.django.models import Subscriber
            Subscriber.objects.create(event="order.paid", url="{receiver.url("/slow")}")
            with transaction.atomic():
                Event("order.paid").send({{"id": 1}})
            """,
        )
        receiver.wait_for(1, timeout=20)  # on the wire: the answer takes 2 s
        code, out = serve.stop(sig)
        assert code == 0, out
        assert "1 delivered" in out, out
        assert ("database work runs in process" in out) == bool(extra), out
        status = shell(
            folder,
            """
            from thorn.django.models import Delivery
            print(*Delivery.objects.values_list("status", flat=True))
            """,
        )
        assert status.split() == ["succeeded"], out
        # The engine's signals: the receiver used the ORM and saw the try
        # recorded; a receiver that raised was logged and broke nothing.
        (line,) = (folder / "signals.log").read_text().splitlines()
        assert line.endswith(" 200 succeeded")
        assert "a receiver of the 'delivery-attempted' signal raised" in out
    finally:
        serve.kill()


def test_bad_options_are_refused_before_anything_starts(folder: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "serve", *args],
            env=django_env(folder),
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )

    usage = serve("--batch", "0")
    assert usage.returncode == 2
    assert "--batch: must be at least 1, not 0" in usage.stderr
    assert serve("--lease", "-5").returncode == 2
    same = serve("--port", "9000", "--probe-port", "9000")
    assert same.returncode == 1
    assert "--probe-port must differ from --port" in same.stderr
    bad_url = serve("--webhook-url", "not a url")
    assert bad_url.returncode == 1
    assert "--webhook-url" in bad_url.stderr
    paths = serve("--readiness-probe", "/alive")
    assert paths.returncode == 1
    assert "the probe paths must differ" in paths.stderr
