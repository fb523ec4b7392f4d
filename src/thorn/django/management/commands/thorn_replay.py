"""``manage.py thorn_replay``: queue finished deliveries again, with their ids."""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ...store import CHUNK_SIZE, REPLAYABLE, DjangoOutboxStore
from ..progress import progress


def parse_when(value: str) -> datetime.datetime:
    """An ISO 8601 date or datetime; without an offset, in the current time zone."""
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{value!r} is not an ISO 8601 date or time, e.g. 2026-05-01 or "
            "2026-05-01T12:00:00+00:00"
        ) from None
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    return when


class Command(BaseCommand):
    help = (
        "Queue finished webhook deliveries again (failed ones by default). "
        "They keep their ids, so receivers can drop what they already have."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--event", help="Only deliveries of this event.")
        parser.add_argument(
            "--subscriber", metavar="UUID", help="Only deliveries to this subscription."
        )
        parser.add_argument(
            "--status",
            choices=sorted(REPLAYABLE),
            default="failed",
            help="Which finished deliveries: failed (default), succeeded, or all.",
        )
        parser.add_argument(
            "--since", type=parse_when, help="Created at or after (ISO 8601)."
        )
        parser.add_argument(
            "--until", type=parse_when, help="Created before (ISO 8601)."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only say how many deliveries would be queued.",
        )
        parser.add_argument("--database", default=None, help="Database alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        store = DjangoOutboxStore(using=options["database"])
        filters = {
            "event": options["event"],
            "subscriber": options["subscriber"],
            "status": options["status"],
            "since": options["since"],
            "until": options["until"],
        }
        total = store.replayable(**filters).count()
        if options["dry_run"]:
            self.stdout.write(f"{total} deliveries would be queued again.")
            return
        out = getattr(self.stdout, "_out", self.stdout)
        with progress(
            "Queuing deliveries", total, out, enabled=total > CHUNK_SIZE
        ) as advance:
            count = store.replay(now=timezone.now(), progress=advance, **filters)
        self.stdout.write(
            self.style.SUCCESS(f"Queued {count} deliveries again.")
            if count
            else "No delivery matched: nothing was queued."
        )
