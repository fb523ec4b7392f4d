"""Stored subscriber lookups per second: the indexed query beside a Python scan.

    python -m benchmarks.subscribers [--rows 100000] [--events 1000]
        [--seconds 2] [--postgresql postgresql://user@127.0.0.1:5432/postgres]

Fills a temporary SQLite database (and, with ``--postgresql``, a throw-away
database made on that server and dropped afterwards) with ``--rows``
subscribers over ``--events`` event names: 90% subscribe to one name, 10%
to a pattern (``category.*``, ``*.verb``, a handful to ``*``). It then
looks up the subscribers of random event names for ``--seconds`` per case:

* ``matching()``: ``Subscriber.objects.matching(event)`` made into model
  instances, as the dispatcher does;
* ``matching() pks``: the same query, primary keys only;
* ``python scan``: the baseline, reading every active subscriber's pattern
  and matching it in Python (primary keys only, to be kind to it).

The database's query plan of ``matching()`` is printed too, to show the
``(event, active)`` index at work. Django is configured here, with only the
apps the model needs.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

VERBS = [
    "created",
    "updated",
    "deleted",
    "published",
    "archived",
    "restored",
    "approved",
    "rejected",
    "assigned",
    "closed",
    "reopened",
    "commented",
    "shared",
    "moved",
    "renamed",
    "paid",
    "refunded",
    "shipped",
    "cancelled",
    "expired",
]
SECRET = "benchmark-secret-" + "x" * 47


def event_names(count: int) -> list[str]:
    """``count`` names ``categoryNN.verb``, 20 verbs per category."""
    categories = (count + len(VERBS) - 1) // len(VERBS)
    names = [f"category{c:03d}.{verb}" for c in range(categories) for verb in VERBS]
    return names[:count]


def subscriber_patterns(rows: int, names: list[str], rng: random.Random) -> list[str]:
    """90% exact names, 10% patterns: ``category.*``, ``*.verb``, a few ``*``."""
    categories = sorted({name.split(".")[0] for name in names})
    everything = max(1, rows // 10_000)
    patterns = ["*"] * everything
    for _ in range(rows - everything):
        roll = rng.random()
        if roll < 0.90:
            patterns.append(rng.choice(names))
        elif roll < 0.96:
            patterns.append(rng.choice(categories) + ".*")
        else:
            patterns.append("*." + rng.choice(VERBS))
    rng.shuffle(patterns)
    return patterns


def database_from_dsn(dsn: str) -> dict[str, Any]:
    """Django's DATABASES entry for ``postgresql://user:password@host:port/name``."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit(
            f"--postgresql takes a URL like postgresql://user@127.0.0.1:5432/postgres,"
            f" not {parts.scheme or 'a bare name'!r}"
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
    }


def add_postgresql_argument(parser: argparse.ArgumentParser) -> None:
    """``--postgresql DSN``: measure on that server too."""
    parser.add_argument(
        "--postgresql",
        metavar="DSN",
        help="also measure on this PostgreSQL server (a throw-away database "
        "is made there and dropped), e.g. postgresql://postgres@127.0.0.1:5432/postgres",
    )


def configure_django(
    sqlite_path: Path,
    dsn: str | None,
    *,
    test_name: str = "thorn_benchmark_subscribers",
    sqlite_options: dict[str, Any] | None = None,
    **more: Any,
) -> list[str]:
    """Configure and set up Django; return the database aliases to measure.

    ``test_name``: the throw-away database's name on the server;
    ``sqlite_options``: the SQLite database's OPTIONS; ``more``: settings."""
    from django.apps import apps
    from django.conf import settings

    databases: dict[str, Any] = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(sqlite_path),
            "OPTIONS": sqlite_options or {},
        }
    }
    if dsn:
        databases["postgresql"] = {
            **database_from_dsn(dsn),
            "TEST": {"NAME": test_name},
        }
    settings.configure(
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "thorn.django",
        ],
        DATABASES=databases,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        SECRET_KEY="benchmark",
        **more,
    )
    # What django.setup() does that matters here (ruff's isort takes a bare
    # "import django" for tests/django, so it is not imported by name).
    apps.populate(settings.INSTALLED_APPS)
    return list(databases)


def fill(alias: str, patterns: list[str]) -> float:
    """Create the tables and the subscribers; return the seconds it took."""
    import uuid

    from django.core.management import call_command
    from django.db import connections

    from thorn.django.models import Subscriber

    start = time.perf_counter()
    if alias == "default":
        call_command("migrate", database=alias, verbosity=0)
    else:
        connections[alias].creation.create_test_db(
            verbosity=0, autoclobber=True, serialize=False
        )
    Subscriber.objects.using(alias).bulk_create(
        (
            Subscriber(
                event=pattern,
                url=f"https://hooks.example.com/{i}",
                hmac_secret=SECRET,
                uuid=uuid.uuid4(),
            )
            for i, pattern in enumerate(patterns)
        ),
        batch_size=5000,
    )
    with connections[alias].cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.perf_counter() - start


def measure(
    step: Callable[[str], int], names: list[str], seconds: float
) -> tuple[float, float]:
    """Run ``step`` on random names for ``seconds``: (lookups/s, rows/lookup)."""
    rng = random.Random(7)
    lookups = rows = 0
    start = time.perf_counter()
    deadline = start + seconds
    while lookups < 3 or time.perf_counter() < deadline:
        rows += step(rng.choice(names))
        lookups += 1
    elapsed = time.perf_counter() - start
    return lookups / elapsed, rows / lookups


def cases(alias: str) -> dict[str, Callable[[str], int]]:
    from thorn.django.models import Subscriber
    from thorn.subscribers import matches_pattern

    objects = Subscriber.objects.using(alias)

    def indexed(event: str) -> int:
        return len(list(objects.matching(event)))

    def indexed_pks(event: str) -> int:
        return len(list(objects.matching(event).values_list("pk", flat=True)))

    def python_scan(event: str) -> int:
        rows = objects.filter(active=True).values_list("pk", "event", "user_id")
        return len(
            [
                pk
                for pk, pattern, user in rows.iterator(chunk_size=10_000)
                if user is None and matches_pattern(pattern, event)
            ]
        )

    return {
        "matching()": indexed,
        "matching() pks": indexed_pks,
        "python scan": python_scan,
    }


def query_plan(alias: str, event: str) -> str:
    from thorn.django.models import Subscriber

    return str(Subscriber.objects.using(alias).matching(event).explain())


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.subscribers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    add_postgresql_argument(parser)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.events < 1:
        parser.error("--rows and --events must be 1 or more")

    rng = random.Random(args.seed)
    names = event_names(args.events)
    patterns = subscriber_patterns(args.rows, names, rng)
    exact = sum("*" not in p for p in patterns)
    print(
        f"{args.rows} subscribers over {len(names)} event names: {exact} exact, "
        f"{args.rows - exact} patterns ({patterns.count('*')} of them '*')"
    )

    with tempfile.TemporaryDirectory(prefix="thorn-bench-") as tmp:
        aliases = configure_django(Path(tmp) / "subscribers.sqlite3", args.postgresql)
        from django.db import connections

        server_names = {a: connections[a].settings_dict["NAME"] for a in aliases}
        try:
            for alias in aliases:
                vendor = connections[alias].vendor
                took = fill(alias, patterns)
                print(f"\n{vendor}: filled in {took:.1f}s")
                results = {}
                for name, step in cases(alias).items():
                    results[name] = measure(step, names, args.seconds)
                base = results["python scan"][0]
                print(
                    f"{'case':<16} {'lookups/s':>10} {'rows/lookup':>12} {'vs scan':>9}"
                )
                for name, (rate, rows) in results.items():
                    print(
                        f"{name:<16} {rate:>10.1f} {rows:>12.1f} {rate / base:>8.1f}x"
                    )
                sample = names[len(names) // 2]
                print(f"query plan of matching({sample!r}):")
                for line in query_plan(alias, sample).splitlines():
                    print(f"  {line}")
        finally:
            drop_databases(aliases, server_names)
    return 0


def drop_databases(aliases: list[str], names: dict[str, str]) -> None:
    """Drop the throw-away databases made on servers (all but ``default``,
    the temporary SQLite file), then close every connection."""
    from django.db import connections

    for alias in aliases:
        if alias != "default":
            connections[alias].creation.destroy_test_db(names[alias], verbosity=0)
    connections.close_all()


if __name__ == "__main__":
    sys.exit(run())
