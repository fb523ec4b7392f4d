"""Running the delivery engine once, for core and Django tests alike.

Django is imported only when a test asks for the Django store, so the core
tests (run without Django settings) can use this module too.
"""

from __future__ import annotations

import datetime
from typing import Any

from thorn.engine.core import DeliveryEngine
from thorn.engine.store import OutboxStore
from thorn.transport.client import new_event_loop


def run_engine_once(
    store: OutboxStore | None = None,
    *,
    now: datetime.datetime | None = None,
    **options: Any,
) -> int:
    """One claim-post-record round of an engine on ``store``, in an event loop
    of its own, then close the engine; return how many deliveries it tried.

    ``store`` defaults to the Django outbox as ``manage.py thorn_worker`` has
    it (its store closes its connection in the engine's database thread);
    ``options`` go to :class:`DeliveryEngine`.
    """
    if store is None:
        from thorn.django.management.commands.thorn_worker import (
            WorkerOutboxStore,
        )

        store = WorkerOutboxStore()
    engine = DeliveryEngine(store, **options)

    async def main() -> int:
        try:
            return await engine.run_once(now)
        finally:
            await engine.aclose()

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
