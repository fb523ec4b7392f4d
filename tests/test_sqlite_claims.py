"""Engines claiming at once from one SQLite file, in DEFERRED transactions.

The SQLite claim reads the due rows, then leases them. Without taking the
write lock first, two engines read the same rows and one fails on its
stale snapshot ("database is locked"). Runs in a subprocess: Django is set
up there on a file of its own (the Django suite's database is in memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, os, sys, threading
import django
from django.conf import settings

settings.configure(
    DATABASES={"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(sys.argv[1], "outbox.sqlite3"),
        "OPTIONS": {"timeout": 30},  # DEFERRED transactions: Django's default
    }},
    INSTALLED_APPS=[
        "django.contrib.contenttypes", "django.contrib.auth", "thorn.django"
    ],
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    THORN_DISPATCHER="outbox",
    LOGGING_CONFIG=None,
)
django.setup()
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from thorn.django.store import DjangoOutboxStore
from thorn.request import Request
from thorn.subscribers import Subscriber

call_command("migrate", verbosity=0)
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode=WAL")
subscriber = Subscriber(event="e", url="http://127.0.0.1:9/x", hmac_secret="s")
data = {"id": 1}
DjangoOutboxStore().enqueue([Request("e", data, None, subscriber) for _ in range(2000)])
claimed, errors = {}, []

def engine(name):
    store, mine = DjangoOutboxStore(), []
    try:
        while tasks := store.claim(owner=name, limit=25, lease=300, now=timezone.now()):
            mine.extend(task.id for task in tasks)
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()
        claimed[name] = mine

threads = [threading.Thread(target=engine, args=(f"e{i}",)) for i in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ids = [pk for mine in claimed.values() for pk in mine]
print(json.dumps({"claimed": len(ids), "distinct": len(set(ids)), "errors": errors}))
"""


def test_engines_claiming_at_once_share_the_work_without_errors(
    tmp_path: Path,
) -> None:
    script = tmp_path / "claims.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"claimed": 2000, "distinct": 2000, "errors": []}
