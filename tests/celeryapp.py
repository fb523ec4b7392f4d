"""The Celery app of the tests' worker processes: ``celery -A celeryapp worker``.

The broker is ``THORN_TEST_REDIS_URL``. Thorn's settings are Django's when
``DJANGO_SETTINGS_MODULE`` is set (the outbox tests); otherwise the worker
makes a plain Thorn app from ``THORN_TEST_SETTINGS`` (JSON), allowed to
deliver to 127.0.0.1. Tests that publish make their own app with
:func:`make_celery`; :class:`Worker` starts and stops worker processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery


def make_celery(broker: str, **conf: Any) -> Celery:
    """A Celery app on ``broker`` that knows Thorn's tasks; JSON only."""
    celery = Celery("celeryapp", broker=broker, include=["thorn.tasks"])
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_enable_remote_control=False,
        worker_prefetch_multiplier=int(os.environ.get("THORN_TEST_PREFETCH", "4")),
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(),
        **conf,
    )
    return celery


def _transport_options() -> dict[str, Any]:
    """Redis transport options; tests that restart the broker shorten the
    time after which a message a worker did not acknowledge is redelivered."""
    options: dict[str, Any] = {
        "visibility_timeout": float(
            os.environ.get("THORN_TEST_VISIBILITY_TIMEOUT", "3600")
        )
    }
    restore = os.environ.get("THORN_TEST_RESTORE_INTERVAL")
    if restore:
        options["unacked_restore_interval"] = int(restore)
        options["unacked_restore_throttle"] = 1
    return options


def _thorn_without_django() -> None:
    from thorn import Thorn
    from thorn.validators import ensure_protocol

    settings: dict[str, Any] = {"THORN_RECIPIENT_VALIDATORS": [ensure_protocol("http")]}
    settings.update(json.loads(os.environ.get("THORN_TEST_SETTINGS", "{}")))
    Thorn(settings=settings, set_as_current=False).set_default()


app = make_celery(os.environ.get("THORN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))

if not os.environ.get("DJANGO_SETTINGS_MODULE") and os.environ.get("THORN_TEST_WORKER"):
    _thorn_without_django()


# -- for the tests that drive worker processes ------------------------------------

CELERY = str(Path(sys.executable).with_name("celery"))


class Worker:
    """A ``celery worker`` process of this module, logging to a file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log_path = log

    @classmethod
    def start(
        cls,
        environ: dict[str, str],
        log: Path,
        *,
        cwd: Path,
        pool: str = "solo",
        concurrency: int = 1,
        name: str = "w",
        loglevel: str = "info",
    ) -> Worker:
        """``celery -A celeryapp worker`` with ``environ``; output to ``log``."""
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    CELERY,
                    "-A",
                    "celeryapp",
                    "worker",
                    f"--pool={pool}",
                    f"--concurrency={concurrency}",
                    f"--hostname={name}@%h",
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                    "-l",
                    loglevel,
                ],
                env=environ,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return cls(proc, log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in self.log():
            assert self.proc.poll() is None, f"the worker exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no worker start:\n{self.log()}"
            time.sleep(0.05)

    def children(self) -> list[int]:
        """Pids of the worker's pool processes (prefork)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.proc.pid:
                found.append(int(stat.parent.name))
        return found

    def stop(self) -> None:
        """SIGKILL (tests end workers the hard way; nothing is left to finish)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(20)
