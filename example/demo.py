"""``make demo``: the example blog sends webhooks to a local ``thorn listen``.

It migrates the example's SQLite database, creates a demo user and a
subscription of theirs to ``article.*`` pointing at a ``thorn listen``
receiver started on 127.0.0.1, then creates, edits, publishes, tags and
deletes an article. The receiver prints every webhook as it arrives, with
its signatures checked against the subscription's secret.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPECTED = 8  # created, changed x2, published, tag added/removed/cleared, removed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the receiver did not start on port {port}")


def main() -> int:
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blog.settings")
    import django

    django.setup()
    from articles.models import Article, Tag
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction

    from thorn.django.models import Subscriber
    from thorn.utils.hmac import random_secret

    print("== Migrating the example database (SQLite)")
    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    user = user_model.objects.filter(username="demo").first()
    if user is None:
        user = user_model.objects.create_superuser("demo", "demo@example.com", "demo")

    port = free_port()
    secret = random_secret(64)
    url = f"http://127.0.0.1:{port}/hooks/articles"
    print(f"== Starting `thorn listen` on 127.0.0.1:{port}")
    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thorn.cli",
            "listen",
            "--port",
            str(port),
            "--secret",
            secret,
            "--exit-after",
            str(EXPECTED),
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port)
        Subscriber.objects.filter(
            user=user, url__startswith="http://127.0.0.1:"
        ).delete()
        sub = Subscriber.objects.create(
            user=user, event="article.*", url=url, hmac_secret=secret
        )
        print(f"== Subscribed {user.username} to article.* (subscription {sub.uuid})")

        print("== Creating, editing, publishing, tagging and deleting an article")
        with transaction.atomic():  # sent when this transaction commits
            article = Article.objects.create(
                title="The Mighty Bear",
                body="It was a dark and stormy night.",
                author=user,
            )
        article.title = "The Mightiest Bear"
        article.save()
        article.state = "PUBLISHED"
        article.save()
        python, _ = Tag.objects.get_or_create(name="python")
        article.tags.add(python)
        article.tags.remove(python)
        article.tags.clear()
        article.delete()

        out, _ = listener.communicate(timeout=40)
    finally:
        if listener.poll() is None:
            listener.kill()
    print(out)
    if listener.returncode != 0:
        print("Some webhooks did not arrive or did not verify.")
        return 1
    print(f"All {EXPECTED} webhooks arrived with verified signatures.\n")
    print("Look around:  .venv/bin/python example/manage.py runserver")
    print("  portal:    http://127.0.0.1:8000/webhooks/   (user demo, password demo)")
    print("             (to list deliveries there: BLOG_DISPATCHER=outbox, and")
    print("             .venv/bin/python example/manage.py thorn_worker beside it)")
    print("  admin:     http://127.0.0.1:8000/admin/   (user demo, password demo)")
    print("  REST API:  http://127.0.0.1:8000/hooks/   (the demo user's subscriptions)")
    print("  schema:    http://127.0.0.1:8000/api/schema/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
