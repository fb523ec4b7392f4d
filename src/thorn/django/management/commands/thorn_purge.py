"""``manage.py thorn_purge``: delete finished messages past the retention period."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ...store import CHUNK_SIZE, DjangoOutboxStore, as_timedelta
from ..progress import progress


class Command(BaseCommand):
    help = (
        "Delete webhook messages, their deliveries and attempts, once every "
        "delivery succeeded (or was cancelled) longer ago than the retention "
        "period. Pending and failed deliveries are never deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            help="e.g. 30d, 12h, 90m, 3600s, 2w (default: THORN_RETENTION).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only say how many messages would be deleted.",
        )
        parser.add_argument("--database", default=None, help="Database alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        store = DjangoOutboxStore(using=options["database"])
        raw = options["older_than"]
        try:
            if raw is None:
                age = as_timedelta(
                    store.settings.THORN_RETENTION, setting="THORN_RETENTION"
                )
            else:
                age = as_timedelta(raw, setting="--older-than")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        now = timezone.now()
        total = store.purgeable(older_than=age, now=now).count()
        if options["dry_run"]:
            self.stdout.write(f"{total} messages would be deleted.")
            return
        out = getattr(self.stdout, "_out", self.stdout)
        with progress(
            "Deleting messages", total, out, enabled=total > CHUNK_SIZE
        ) as advance:
            count = store.purge(older_than=age, now=now, progress=advance)
        self.stdout.write(
            self.style.SUCCESS(f"Deleted {count} messages older than {age}.")
            if count
            else f"No finished message older than {age}: nothing was deleted."
        )
