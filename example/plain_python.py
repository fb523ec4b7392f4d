"""Thorn in five events: a local receiver, static subscribers, signed deliveries.

Run with ``.venv/bin/python example/plain_python.py``. It starts a receiver
on 127.0.0.1 that checks every webhook's signatures (Hook-HMAC and Standard
Webhooks), subscribes it to a few events through ``THORN_SUBSCRIBERS``,
sends events from plain Python, and prints what arrived.
"""

from __future__ import annotations

import datetime
import decimal
import sys
import uuid

from thorn import Event, Thorn, buffer_events
from thorn.cli import _print_hook
from thorn.listener import ListenerThread, Reply
from thorn.validators import ensure_protocol

SECRET = "demo-secret-please-change-me-0123456789abcdefghijklmnopqrstuvwx"


def main() -> int:
    with ListenerThread(secret=SECRET, on_hook=lambda hook: None) as receiver:
        receiver.route("/flaky", [Reply(status=503), Reply(status=200)])
        app = Thorn(
            settings={
                "THORN_SUBSCRIBERS": {
                    "article.*": {
                        "url": receiver.url("/articles"),
                        "hmac_secret": SECRET,
                    },
                    "*.created": [
                        {"url": receiver.url("/created"), "hmac_secret": SECRET},
                        {
                            "url": receiver.url("/created-form"),
                            "hmac_secret": SECRET,
                            "content_type": "application/x-www-form-urlencoded",
                        },
                    ],
                    "order.paid": {
                        "url": receiver.url("/flaky"),
                        "hmac_secret": SECRET,
                    },
                },
                # The default validators refuse 127.0.0.1 and ports other
                # than 80/443; this demo delivers to its own local receiver.
                "THORN_RECIPIENT_VALIDATORS": [ensure_protocol("http", "https")],
                "THORN_RETRY_DELAY": 0.2,
            }
        )
        print(f"receiver on {receiver.url('/')}; sending events...\n")
        article = {
            "uuid": uuid.uuid4(),
            "title": "The Mighty Bear",
            "state": "PUBLISHED",
        }
        Event("article.created").send(article)
        Event("article.published").send(
            {**article, "at": datetime.datetime.now(datetime.UTC)}
        )
        with buffer_events():
            Event("user.created").send({"username": "george"})
            Event("user.created").send({"username": "elaine"})
        Event("order.paid").send({"order": 1042, "amount": decimal.Decimal("19.90")})
        app.dispatcher.wait_for_retries(10)
        app.close()
        hooks = receiver.wait_for(10)
        for hook in hooks:
            _print_hook(hook, sys.stdout, show_body=True, max_body=400)
            print()
        bad = [h for h in hooks if not h.verified]
        print(
            f"{len(hooks)} webhooks received, "
            f"{len(hooks) - len(bad)} with verified signatures."
        )
        print(
            "(order.paid was answered 503 once and delivered again with the same id.)"
        )
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
