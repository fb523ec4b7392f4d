"""Deliveries per second of Thorn's dispatchers, beside baselines, in one run.

    python -m benchmarks.run [--seconds 3] [--only default]

Every case posts the same 1 KB JSON body, signed with HMAC-SHA256, to a
local receiver running in another process (so the two share the machine's
cores as a real sender and receiver would). Figures are deliveries per
second; the table also shows each case against the first baseline.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .receiver import ReceiverProcess

SECRET = "benchmark-secret-" + "x" * 47
PAYLOAD = {
    "event": "article.created",
    "ref": "https://example.com/a/1",
    "data": {"body": "x" * 940},
}
BODY = json.dumps(PAYLOAD, separators=(",", ":")).encode()
assert 1000 <= len(BODY) <= 1100, len(BODY)

Case = Callable[[ReceiverProcess, float], int]


def timed(seconds: float, step: Callable[[], int]) -> tuple[int, float]:
    """Run ``step`` (returns deliveries made) until ``seconds`` pass."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        done += step()
    return done, time.perf_counter() - start


def requests_keepalive(receiver: ReceiverProcess, seconds: float) -> tuple[int, float]:
    """Baseline: one requests.Session, keep-alive, one signed post at a time."""
    import requests

    session = requests.Session()
    url = receiver.url("/requests")

    def step() -> int:
        sig = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest())
        r = session.post(
            url,
            data=BODY,
            headers={"Content-Type": "application/json", "Hook-HMAC": sig.decode()},
            timeout=3,
        )
        r.raise_for_status()
        return 1

    try:
        return timed(seconds, step)
    finally:
        session.close()


def requests_session_per_post(
    receiver: ReceiverProcess, seconds: float
) -> tuple[int, float]:
    """Thorn 1.x style: a new requests session (a new connection) per post."""
    import requests

    url = receiver.url("/thorn1")

    def step() -> int:
        sig = base64.b64encode(hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest())
        with requests.Session() as session:
            session.post(
                url,
                data=BODY,
                headers={"Content-Type": "application/json", "Hook-HMAC": sig.decode()},
                timeout=3,
            ).raise_for_status()
        return 1

    return timed(seconds, step)


def _thorn_default(
    subscribers: int,
) -> Callable[[ReceiverProcess, float], tuple[int, float]]:
    def case(receiver: ReceiverProcess, seconds: float) -> tuple[int, float]:
        from thorn import Event, Thorn
        from thorn.validators import ensure_protocol

        app = Thorn(
            settings={
                "THORN_RECIPIENT_VALIDATORS": [ensure_protocol("http")],
                "THORN_RETRY": False,
            }
        )
        subs = [
            {"url": receiver.url(f"/default/{i}"), "hmac_secret": SECRET}
            for i in range(subscribers)
        ]
        event = Event("article.created", subscribers=subs, app=app)
        failures: list[Any] = []

        def step() -> int:
            event.send(PAYLOAD, on_error=lambda r, e: failures.append(e))
            return subscribers

        try:
            done, elapsed = timed(seconds, step)
        finally:
            app.close()
        if failures:
            raise RuntimeError(f"{len(failures)} deliveries failed: {failures[0]}")
        return done, elapsed

    case.__doc__ = (
        f"Thorn default dispatcher, one event to {subscribers} subscriber(s) per send()"
    )
    return case


CASES: dict[str, Callable[[ReceiverProcess, float], tuple[int, float]]] = {
    "requests-keepalive": requests_keepalive,
    "requests-session-per-post": requests_session_per_post,
    "default-1": _thorn_default(1),
    "default-10": _thorn_default(10),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per case")
    parser.add_argument("--only", nargs="*", help=f"cases to run ({', '.join(CASES)})")
    parser.add_argument("--json", type=Path, help="also write results to this file")
    args = parser.parse_args(argv)
    names = args.only or list(CASES)
    results = []
    with ReceiverProcess() as receiver:
        for name in names:
            case = CASES[name]
            case(receiver, min(0.5, args.seconds))  # warm up
            done, elapsed = case(receiver, args.seconds)
            rate = done / elapsed
            results.append(
                {
                    "case": name,
                    "deliveries": done,
                    "seconds": elapsed,
                    "per_second": rate,
                    "about": (case.__doc__ or "").strip().splitlines()[0],
                }
            )
    base = results[0]["per_second"]
    print(
        f"# {platform.node()} · {os.cpu_count()} cores · "
        f"Python {sys.version.split()[0]}"
    )
    print(
        f"# {len(BODY)}-byte signed JSON to a local receiver process, "
        f"{args.seconds:g}s per case"
    )
    print(f"{'case':28} {'deliveries/s':>13} {'× ' + names[0]:>26}  about")
    for r in results:
        print(
            f"{r['case']:28} {r['per_second']:13,.0f} "
            f"{r['per_second'] / base:25.2f}×  {r['about']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
