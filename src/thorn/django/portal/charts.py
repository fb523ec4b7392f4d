"""Numbers about an endpoint's tries: success rates, and a chart drawn as SVG.

The chart is server-side: the attempt log is counted per hour (or per day)
in the database, and the bars' geometry is computed here for an inline SVG
template, with the same numbers in a table for people who cannot see it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.db.models.functions import Trunc
from django.utils import timezone

from ..models import Attempt

__all__ = [
    "PERIODS",
    "AttemptChart",
    "Bar",
    "attempt_chart",
    "success_rates",
]

#: Tries that did not get a 2xx answer (no answer at all included).
FAILED = Q(status_code__isnull=True) | Q(status_code__lt=200) | Q(status_code__gte=300)


@dataclass(frozen=True, slots=True)
class Period:
    """How a chart slices time: ``count`` buckets of one ``kind`` each."""

    kind: str  # "hour" or "day", as Trunc takes it
    count: int
    step: datetime.timedelta
    label_format: str  # strftime of a bucket's start
    label_every: int  # label every n-th bucket
    title: str


#: The periods a chart can show, by the name in the page's query string.
PERIODS = {
    "hours": Period(
        "hour", 48, datetime.timedelta(hours=1), "%H:%M", 6, "the last 48 hours"
    ),
    "days": Period(
        "day", 30, datetime.timedelta(days=1), "%b %d", 5, "the last 30 days"
    ),
}

# The drawing: a viewBox of WIDTH x HEIGHT, the plot inside the margins.
WIDTH = 720
HEIGHT = 220
LEFT = 44
RIGHT = 8
TOP = 12
BOTTOM = 28


@dataclass(frozen=True, slots=True)
class Bar:
    """One bucket: its counts, its label, and where its rectangles go."""

    start: datetime.datetime
    total: int
    failed: int
    label: str
    show_label: bool
    x: float
    width: float
    y_total: float
    height_total: float
    y_failed: float
    height_failed: float

    @property
    def succeeded(self) -> int:
        return self.total - self.failed


@dataclass(frozen=True, slots=True)
class AttemptChart:
    """Tries and failed tries per bucket, ready for the SVG template."""

    period: str
    title: str
    bars: Sequence[Bar]
    peak: int
    total: int
    failed: int
    start: datetime.datetime
    end: datetime.datetime
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    baseline: float = HEIGHT - BOTTOM
    right_edge: float = WIDTH - RIGHT

    @property
    def plot_height(self) -> float:
        return self.baseline - self.top

    @property
    def busiest(self) -> Bar | None:
        return max(self.bars, key=lambda bar: bar.total) if self.total else None

    @property
    def description(self) -> str:
        """What the chart shows, in words (its SVG ``<desc>``)."""
        if not self.total:
            return f"No tries in {self.title}."
        busiest = self.busiest
        assert busiest is not None
        return (
            f"{_tries(self.total)} in {self.title}, {self.failed} of them failed. "
            f"The busiest {PERIODS[self.period].kind} began "
            f"{busiest.start:%Y-%m-%d %H:%M} UTC with {_tries(busiest.total)}."
        )


def _tries(count: int) -> str:
    return f"{count} try" if count == 1 else f"{count} tries"


def _bucket_start(moment: datetime.datetime, kind: str) -> datetime.datetime:
    moment = moment.astimezone(datetime.UTC)
    if kind == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _counts(
    subscriber: Any, kind: str, start: datetime.datetime, end: datetime.datetime
) -> dict[datetime.datetime, tuple[int, int]]:
    rows = (
        Attempt.objects.filter(
            delivery__subscriber=subscriber, started_at__gte=start, started_at__lt=end
        )
        .annotate(bucket=Trunc("started_at", kind, tzinfo=datetime.UTC))
        .values("bucket")
        .annotate(total=Count("id"), failed=Count("id", filter=FAILED))
        .order_by()
    )
    counts: dict[datetime.datetime, tuple[int, int]] = {}
    for row in rows:
        bucket = _bucket_start(row["bucket"], kind)
        total, failed = counts.get(bucket, (0, 0))
        counts[bucket] = (total + row["total"], failed + row["failed"])
    return counts


def attempt_chart(
    subscriber: Any, period: str = "hours", *, now: datetime.datetime | None = None
) -> AttemptChart:
    """The chart of ``subscriber``'s tries over ``period`` ("hours" or "days")."""
    spec = PERIODS.get(period)
    if spec is None:
        raise ValueError(f"period must be one of {sorted(PERIODS)}, not {period!r}")
    now = now or timezone.now()
    end = _bucket_start(now, spec.kind) + spec.step
    start = end - spec.step * spec.count
    counts = _counts(subscriber, spec.kind, start, end)
    peak = max((total for total, _failed in counts.values()), default=0)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / spec.count
    gap = min(2.0, slot / 5)
    bars = []
    for index in range(spec.count):
        bucket = start + spec.step * index
        total, failed = counts.get(bucket, (0, 0))
        height_total = plot_height * total / peak if peak else 0.0
        height_failed = plot_height * failed / peak if peak else 0.0
        bars.append(
            Bar(
                start=bucket,
                total=total,
                failed=failed,
                label=bucket.strftime(spec.label_format),
                show_label=index % spec.label_every == 0,
                x=round(LEFT + index * slot + gap / 2, 2),
                width=round(slot - gap, 2),
                y_total=round(TOP + plot_height - height_total, 2),
                height_total=round(height_total, 2),
                y_failed=round(TOP + plot_height - height_failed, 2),
                height_failed=round(height_failed, 2),
            )
        )
    return AttemptChart(
        period=period,
        title=spec.title,
        bars=bars,
        peak=peak,
        total=sum(bar.total for bar in bars),
        failed=sum(bar.failed for bar in bars),
        start=start,
        end=end,
    )


@dataclass(frozen=True, slots=True)
class SuccessRate:
    """How many of an endpoint's recent tries got a 2xx answer."""

    total: int
    succeeded: int

    @property
    def percent(self) -> int:
        return round(100 * self.succeeded / self.total) if self.total else 0


#: How far back the subscription list's success rate looks.
RATE_WINDOW = datetime.timedelta(days=7)


def success_rates(
    subscribers: Iterable[Any], *, now: datetime.datetime | None = None
) -> dict[Any, SuccessRate]:
    """The success rate of each subscriber's tries in the last 7 days, by pk.

    Subscribers without a try in that time are left out.
    """
    keys = [sub.pk for sub in subscribers]
    if not keys:
        return {}
    since = (now or timezone.now()) - RATE_WINDOW
    rows = (
        Attempt.objects.filter(delivery__subscriber__in=keys, started_at__gte=since)
        .values("delivery__subscriber")
        .annotate(total=Count("id"), failed=Count("id", filter=FAILED))
        .order_by()
    )
    return {
        row["delivery__subscriber"]: SuccessRate(
            total=row["total"], succeeded=row["total"] - row["failed"]
        )
        for row in rows
    }
