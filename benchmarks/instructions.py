"""Instructions per delivery of the outbox store's calls, counted by callgrind.

    python -m benchmarks.instructions [--count 2000] [--sends 100] [--against REF]

Wall-clock figures on a shared machine move by ±20% from run to run, more
than most changes to the store are worth. Valgrind's callgrind counts the
instructions the process executes instead: the same code gives the same
count within about 2% (the ids are random, so SQLite's trees differ a
little from run to run), so two versions can be compared closely.

The script runs a child process under ``valgrind --tool=callgrind`` on a
temporary SQLite file (WAL, full sync, as ``benchmarks.store``). The child
sends ``--count`` deliveries in sends of 1 to 51 deliveries (``enqueue``),
then claims them 1,000 at a time and records each claim's results in three
pieces of varying sizes, as the engine does (``claim``, ``record``). Then
it calls ``Event.send()`` with the outbox ``--sends`` times to 1 and to 10
subscribers, each send in its own transaction (``send-1``, ``send-10``:
instructions per send, the subscriber lookup and the commit included). Before
and after each call it calls ``os.getppid()``, which callgrind is told to
dump its counters at; the dumps give each call's instructions.

``--against REF`` also runs the child on a git worktree of ``REF`` (a
commit, a branch, ``HEAD~1``), with that version's ``thorn`` and the same
harness, and prints both side by side. Python runs with
``PYTHONMALLOC=malloc`` (valgrind's advice) and a fixed hash seed; the
counts include the interpreter's work for the calls, not Django's start.
Needs ``valgrind``; takes about two and a half minutes per version.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The phases the child marks, and what the table calls them: the store's
#: calls (per delivery), then whole ``send()`` calls with the outbox, each
#: in its own transaction, to 1 and to 10 subscribers (per send).
PHASES = ("enqueue", "claim", "record", "send-1", "send-10")
#: Sends of each ``send`` phase (``--sends``).
SENDS = 100
#: Deliveries per send, in turn (the sends of an application vary).
SEND_SIZES = (1, 3, 10, 7, 2, 25, 1, 51)
CLAIM = 1000
ROOT = Path(__file__).resolve().parent.parent


def child(count: int, sends_count: int, folder: Path, phases_file: Path) -> None:
    """The process callgrind watches: enqueue, claim and record ``count``."""
    marks: list[str] = []

    def mark(name: str) -> None:
        marks.append(name)
        os.getppid()  # callgrind dumps its counters here

    from .subscribers import configure_django

    configure_django(
        folder / "outbox.sqlite3",
        None,
        test_name="thorn_benchmark_instructions",
        sqlite_options={
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
            "transaction_mode": "IMMEDIATE",
        },
        THORN_DISPATCHER="outbox",
        LOGGING_CONFIG=None,
    )
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from thorn.django.store import DjangoOutboxStore
    from thorn.engine.store import AttemptResult

    from .engine import _requests

    call_command("migrate", verbosity=0)
    store = DjangoOutboxStore()

    def results(tasks: list[Any], now: Any) -> list[AttemptResult]:
        return [
            AttemptResult(t.id, "succeeded", now, 0.001, 200, "", b"ok", None, None)
            for t in tasks
        ]

    # Warm-up: every call once, so the first measured call is not the
    # first ever (imports, prepared statements of the small sizes).
    with transaction.atomic():
        store.enqueue(_requests("http://127.0.0.1:9/warm", 10))
    now = timezone.now()
    warm = store.claim(owner="warm", limit=10, lease=300, now=now)
    store.record(results(warm, now), owner="warm", now=now)

    requests = _requests("http://127.0.0.1:9/instructions", count)
    start = turn = 0
    while start < count:
        size = SEND_SIZES[turn % len(SEND_SIZES)]
        turn += 1
        mark("enqueue")
        with transaction.atomic():
            store.enqueue(requests[start : start + size])
        mark("")
        start += size
    rng = random.Random(7)
    while True:
        now = timezone.now()
        mark("claim")
        tasks = store.claim(owner="bench", limit=CLAIM, lease=300, now=now)
        mark("")
        if not tasks:
            break
        done = results(tasks, now)
        cuts = sorted(rng.sample(range(1, len(done)), 2)) if len(done) > 2 else []
        for piece in _pieces(done, cuts):
            mark("record")
            store.record(piece, owner="bench", now=timezone.now())
            mark("")
    mark("")
    sends(mark, sends_count)
    phases_file.write_text(json.dumps(marks))


def sends(mark: Any, times: int) -> None:
    """``Event.send()`` with the outbox, ``times`` times to 1 and to 10
    subscribers, each in its own transaction (its commit included)."""
    from django.db import transaction

    from thorn import Event
    from thorn.django.models import Subscriber

    from .engine import BODY, SECRET

    payload = json.loads(BODY)
    for phase in PHASES[3:]:
        subscribers = int(phase.split("-")[1])
        event = Event(f"bench.send{subscribers}")
        Subscriber.objects.bulk_create(
            Subscriber(
                event=event.name,
                url=f"http://127.0.0.1:9/send/{i}",
                hmac_secret=SECRET,
            )
            for i in range(subscribers)
        )
        with transaction.atomic():
            event.send(payload)  # warm-up: the first send of an event
        mark(phase)  # one dump for all: each dump costs valgrind seconds
        for _ in range(times):
            with transaction.atomic():
                event.send(payload)
        mark("")


def _pieces(items: list[Any], cuts: list[int]) -> list[list[Any]]:
    edges = [0, *cuts, len(items)]
    return [items[a:b] for a, b in itertools.pairwise(edges) if b > a]


def count_instructions(
    count: int, source: Path, sends_count: int = SENDS
) -> dict[str, float]:
    """Run the child under callgrind with ``thorn`` from ``source`` (a
    folder holding ``src/thorn``); instructions per delivery by phase."""
    with tempfile.TemporaryDirectory(prefix="thorn-callgrind-") as tmp:
        folder = Path(tmp)
        phases_file = folder / "phases.json"
        out = folder / "callgrind.out"
        env = {
            **os.environ,
            "PYTHONMALLOC": "malloc",
            "PYTHONHASHSEED": "0",
            # This version's thorn first; the harness from this tree.
            "PYTHONPATH": os.pathsep.join([str(source / "src"), str(ROOT)]),
        }
        command = [
            "valgrind",
            "--tool=callgrind",
            "--dump-before=os_getppid",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            str(count),
            str(sends_count),
            str(folder),
            str(phases_file),
        ]
        run = subprocess.run(
            command, env=env, capture_output=True, text=True, check=False
        )
        if run.returncode != 0 or not phases_file.exists():
            raise RuntimeError(f"the child failed:\n{run.stdout}\n{run.stderr}")
        marks = json.loads(phases_file.read_text())
        totals: dict[str, int] = dict.fromkeys(PHASES, 0)
        # Dump k (from 1) holds what ran since dump k-1: the phase marked
        # by mark k-1 (dump 1 is the start, before the first mark).
        for k in range(2, len(marks) + 1):
            name = marks[k - 2]
            if name in totals:
                totals[name] += _dump_total(Path(f"{out}.{k}"))
    return {
        name: totals[name] / (sends_count if name.startswith("send") else count)
        for name in PHASES
    }


def _dump_total(path: Path) -> int:
    with path.open() as lines:
        for line in lines:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def worktree(ref: str, folder: Path) -> Path:
    """A detached git worktree of ``ref`` in ``folder``."""
    path = folder / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), ref],
        check=True,
    )
    return path


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions",
        description=(__doc__ or "").split("\n")[0],
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--against", metavar="REF", help="also count this git ref")
    parser.add_argument(
        "--sends", type=int, default=SENDS, help="sends of each send-N phase"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        count, sends_count, folder, phases = args.child
        child(int(count), int(sends_count), Path(folder), Path(phases))
        return 0
    if args.count < 10:
        parser.error("--count must be 10 or more")
    if args.sends < 1:
        parser.error("--sends must be 1 or more")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    columns = {"this tree": count_instructions(args.count, ROOT, args.sends)}
    if args.against:
        with tempfile.TemporaryDirectory(prefix="thorn-against-") as tmp:
            tree = worktree(args.against, Path(tmp))
            try:
                columns[args.against] = count_instructions(args.count, tree, args.sends)
            finally:
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(ROOT),
                        "worktree",
                        "remove",
                        "--force",
                        str(tree),
                    ],
                    check=False,
                )
    print(
        f"# instructions per delivery (thousands), callgrind, {args.count:,} "
        f"deliveries on SQLite; sends of {min(SEND_SIZES)}-{max(SEND_SIZES)}, "
        f"claims of {CLAIM:,}, records in 3 pieces each; send-N: per "
        f"Event.send() to N subscribers with the outbox, {args.sends} sends each "
        "in its own transaction"
    )
    names = list(columns)
    print(f"{'call':10}" + "".join(f"{name:>16}" for name in names))
    for phase in PHASES:
        cells = "".join(f"{columns[name][phase] / 1000:16.1f}" for name in names)
        if len(names) == 2:
            base = columns[names[1]][phase]
            change = (columns[names[0]][phase] - base) / base if base else 0.0
            cells += f"   {change:+.1%}"
        print(f"{phase:10}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
