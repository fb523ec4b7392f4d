"""``thorn replay`` and ``thorn purge`` in a Django project, run as a user runs them.

The installed ``thorn`` script runs in the folder of a settings module on a
database of the test's own (a SQLite file, or one on the PostgreSQL server
of that run), the way ``cd mysite && thorn replay --settings ...`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_django_serve import django_env, serve_database, shell, write_settings

pytestmark = pytest.mark.slow

THORN = Path(sys.executable).with_name("thorn")
#: More than one chunk (CHUNK_SIZE is 500), so the progress shows.
MANY = 510


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A migrated project folder: ``servesettings`` on the test's database."""
    with serve_database(tmp_path) as database:
        write_settings(tmp_path, database)
        migrate = subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
            env=django_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        yield tmp_path


def thorn(
    folder: Path, *args: str, settings: str | None = "servesettings"
) -> subprocess.CompletedProcess[str]:
    """``thorn ARGS`` in ``folder``, with ``--settings`` (not the environment)."""
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("THORN_TEST_DB", None)
    # The settings import ``testproject`` (tests/): as a project's own
    # packages would be, it is on the path; the folder itself is not.
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    extra = ["--settings", settings] if settings else []
    return subprocess.run(
        [str(THORN), *args, *extra],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def statuses(folder: Path) -> dict[str, int]:
    out = shell(
        folder,
        """
        from collections import Counter
        from thorn.django.models import Delivery
        counts = Counter(Delivery.objects.values_list("status", flat=True))
        print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        """,
    )
    return {k: int(v) for k, v in (pair.split("=") for pair in out.split())}


def test_replay_queues_failed_deliveries_again_with_progress(project: Path) -> None:
    shell(
        project,
        f"""
        from django.db import transaction
        from thorn import Event
        from thorn.django.models import Delivery, Subscriber
        Subscriber.objects.bulk_create(
            Subscriber(event="order.paid", url=f"https://example.com/{{i}}")
            for i in range({MANY})
        )
        Subscriber.objects.create(event="user.created", url="https://example.com/u")
        with transaction.atomic():
            Event("order.paid").send({{"id": 1}})
            Event("user.created").send({{"id": 2}})
        Delivery.objects.update(status="failed", next_attempt_at=None)
        """,
    )
    dry = thorn(project, "replay", "--event", "order.paid", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == f"{MANY} deliveries would be queued again."
    assert statuses(project) == {"failed": MANY + 1}

    done = thorn(project, "replay", "--event", "order.paid")
    assert done.returncode == 0, done.stderr
    assert f"Queued {MANY} deliveries again." in done.stdout
    # Not a terminal: a line per step of the progress, then the total.
    assert "Queuing deliveries: 500/510" in done.stdout
    assert f"Queuing deliveries: {MANY}/{MANY}" in done.stdout
    assert statuses(project) == {"failed": 1, "pending": MANY}

    again = thorn(project, "replay", "--event", "order.paid")
    assert again.returncode == 0
    assert "No delivery matched: nothing was queued." in again.stdout


def test_purge_deletes_old_finished_messages_with_progress(project: Path) -> None:
    shell(
        project,
        f"""
        import datetime
        from django.db import transaction
        from django.utils import timezone
        from thorn import Event
        from thorn.django.models import Delivery, Message, Subscriber
        Subscriber.objects.create(event="order.paid", url="https://example.com/h")
        with transaction.atomic():
            for i in range({MANY} + 1):
                Event("order.paid").send({{"id": i}})
        old = timezone.now() - datetime.timedelta(days=40)
        Message.objects.update(created_at=old)
        Delivery.objects.update(status="succeeded", completed_at=old)
        # One message still has a failed delivery: it stays.
        Delivery.objects.filter(pk=Delivery.objects.first().pk).update(status="failed")
        """,
    )
    dry = thorn(project, "purge", "--older-than", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == f"{MANY} messages would be deleted."
    done = thorn(project, "purge", "--older-than", "30d")
    assert done.returncode == 0, done.stderr
    assert f"Deleted {MANY} messages older than 30 days" in done.stdout
    assert f"Deleting messages: {MANY}/{MANY}" in done.stdout
    assert statuses(project) == {"failed": 1}


def test_wrong_usage_exits_2_and_a_database_failure_exits_1(project: Path) -> None:
    since = thorn(project, "replay", "--since", "yesterday")
    assert since.returncode == 2
    assert "'yesterday' is not an ISO 8601 date" in since.stderr
    status = thorn(project, "replay", "--status", "lost")
    assert status.returncode == 2
    assert "invalid choice: 'lost'" in status.stderr
    age = thorn(project, "purge", "--older-than", "forever")
    assert age.returncode == 2
    assert "--older-than" in age.stderr

    (project / "nothornsettings.py").write_text(
        "from servesettings import *  # noqa: F403\n"
        "INSTALLED_APPS = ['django.contrib.contenttypes']\n"
    )
    absent = thorn(project, "purge", settings="nothornsettings")
    assert absent.returncode == 2
    assert "add 'thorn.django' to INSTALLED_APPS" in absent.stderr

    (project / "emptysettings.py").write_text(
        "from servesettings import *  # noqa: F403\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(project / 'empty.sqlite3')!r}}}}}\n"
    )
    broken = thorn(project, "purge", settings="emptysettings")
    assert broken.returncode == 1
    assert "thorn purge: the database failed: no such table" in broken.stderr

    # DJANGO_SETTINGS_MODULE works as well as --settings.
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="servesettings")
    env["PYTHONPATH"] = str(Path(__file__).parents[1])
    env.pop("THORN_TEST_DB", None)
    by_env = subprocess.run(
        [str(THORN), "purge", "--dry-run"],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stdout.strip() == "0 messages would be deleted."
