"""Deliveries per second of Thorn's dispatchers beside baselines, in one run.

    python -m benchmarks.run [--seconds 2] [--rounds 3] [--only CASE ...]

Every case posts the same 1 KB JSON body, signed with HMAC-SHA256, to a
local receiver running in another process (so sender and receiver share the
machine's two cores, as the issue asks). The cases take turns for
``--rounds`` rounds of ``--seconds`` each, and the median rate of each case
is reported, so a noisy moment hurts all cases alike. The last column
compares each case with the first baseline.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import platform
import statistics
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

Step = Callable[[], int]  # makes some deliveries, returns how many
Setup = Callable[[ReceiverProcess], tuple[Step, Callable[[], None]]]


def _sign() -> str:
    return base64.b64encode(
        hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    ).decode()


def requests_keepalive(receiver: ReceiverProcess) -> tuple[Step, Callable[[], None]]:
    """A plain requests.Session (keep-alive), one signed post at a time."""
    import requests

    session = requests.Session()
    url = receiver.url("/requests")

    def step() -> int:
        headers = {"Content-Type": "application/json", "Hook-HMAC": _sign()}
        session.post(url, data=BODY, headers=headers, timeout=3).raise_for_status()
        return 1

    return step, session.close


def requests_session_per_post(
    receiver: ReceiverProcess,
) -> tuple[Step, Callable[[], None]]:
    """Thorn 1.x style: a new requests session (so a new connection) per post."""
    import requests

    url = receiver.url("/thorn1")

    def step() -> int:
        headers = {"Content-Type": "application/json", "Hook-HMAC": _sign()}
        with requests.Session() as session:
            session.post(url, data=BODY, headers=headers, timeout=3).raise_for_status()
        return 1

    return step, lambda: None


def http_client_keepalive(receiver: ReceiverProcess) -> tuple[Step, Callable[[], None]]:
    """The standard library's http.client, keep-alive, one post at a time."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=3)

    def step() -> int:
        headers = {"Content-Type": "application/json", "Hook-HMAC": _sign()}
        conn.request("POST", "/httpclient", body=BODY, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(response.status)
        return 1

    return step, conn.close


def thorn_default(subscribers: int) -> Setup:
    def setup(receiver: ReceiverProcess) -> tuple[Step, Callable[[], None]]:
        from thorn import Event, Thorn
        from thorn.validators import ensure_protocol

        app = Thorn(
            settings={
                # The receiver is on 127.0.0.1 and a high port.
                "THORN_RECIPIENT_VALIDATORS": [ensure_protocol("http")],
                "THORN_RETRY": False,
            },
            set_as_current=False,
        )
        subs = [
            {"url": receiver.url(f"/default/{i}"), "hmac_secret": SECRET}
            for i in range(subscribers)
        ]
        event = Event("article.created", subscribers=subs, app=app)
        failures: list[Any] = []

        def step() -> int:
            event.send(PAYLOAD, on_error=lambda r, e: failures.append(e))
            if failures:
                raise RuntimeError(f"a delivery failed: {failures[0]}")
            return subscribers

        return step, app.close

    setup.__doc__ = (
        f"Thorn default dispatcher: send() of one event to {subscribers} "
        f"subscriber{'s' if subscribers > 1 else ''}"
    )
    return setup


CASES: dict[str, Setup] = {
    "requests-keepalive": requests_keepalive,
    "requests-session-per-post": requests_session_per_post,
    "http.client-keepalive": http_client_keepalive,
    "thorn-default-1": thorn_default(1),
    "thorn-default-10": thorn_default(10),
}


def measure(step: Step, seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        done += step()
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", help=f"cases to run ({', '.join(CASES)})")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = args.only or list(CASES)
    rates: dict[str, list[float]] = {name: [] for name in names}
    with ReceiverProcess() as receiver:
        prepared = {name: CASES[name](receiver) for name in names}
        try:
            for step, _ in prepared.values():
                measure(step, 0.3)  # warm up: connections, caches
            for _ in range(args.rounds):
                for name, (step, _) in prepared.items():
                    rates[name].append(measure(step, args.seconds))
        finally:
            for _, close in prepared.values():
                close()
    results = [
        {
            "case": name,
            "per_second": statistics.median(rates[name]),
            "rounds": rates[name],
            "about": (CASES[name].__doc__ or "").strip().splitlines()[0],
        }
        for name in names
    ]
    base = results[0]["per_second"]
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}; {len(BODY)}-byte signed JSON "
        "to a receiver process on 127.0.0.1"
    )
    print(f"# median of {args.rounds} rounds of {args.seconds:g}s per case")
    print(f"{'case':28} {'deliveries/s':>13} {'vs ' + names[0]:>24}  about")
    for r in results:
        print(
            f"{r['case']:28} {r['per_second']:13,.0f} "
            f"{r['per_second'] / base:23.2f}x  {r['about']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
