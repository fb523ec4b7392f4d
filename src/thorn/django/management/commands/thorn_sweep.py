"""``manage.py thorn_sweep``: publish again the deliveries no Celery worker took."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ....app import app_or_default
from ....exceptions import ImproperlyConfigured
from ....tasks import sweep_grace, sweep_outbox
from ...celery_store import CeleryOutboxStore


class Command(BaseCommand):
    help = (
        "Celery dispatcher: publish again the outbox's deliveries that have "
        "been due for longer than the grace period with no worker holding "
        "them (their task was lost, or the worker that held them died). Run "
        "it every minute or so (cron, a Kubernetes CronJob), or schedule the "
        "thorn.tasks.sweep task in celery beat."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            metavar="AGE",
            help="How long a due delivery may wait unclaimed, e.g. 60s, 5m "
            "(default: THORN_CELERY_SWEEP_GRACE).",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Publish at most this many deliveries (default: all).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only say how many deliveries would be published.",
        )
        parser.add_argument("--database", default=None, help="Database alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        app = app_or_default(None)
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be 1 or more")
        try:
            grace = sweep_grace(app, options["grace"])
        except (ValueError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None
        if options["dry_run"]:
            store = CeleryOutboxStore(app=app, using=options["database"])
            count = store.sweepable(grace=grace, now=timezone.now())
            self.stdout.write(
                f"{count} deliveries have waited longer than {grace} unclaimed."
            )
            return
        deliveries, messages = sweep_outbox(
            app=app, grace=grace, limit=limit, using=options["database"]
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Published {deliveries} deliveries again in {messages} messages."
            )
            if deliveries
            else f"Nothing to publish: no delivery has waited longer than {grace}."
        )
