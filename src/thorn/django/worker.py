"""The store a Django project's delivery engine works on.

Imports nothing of Django at import time: :func:`worker_store` is what a
:class:`~thorn.engine.process.ProcessStore` unpickles in a fresh process,
before Django is set up there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..signals import SignalingOutboxStore
    from .store import WorkerOutboxStore

__all__ = ["engine_store", "worker_store"]


def worker_store(using: str | None = None) -> WorkerOutboxStore:
    """Set Django up if it is not yet (from ``DJANGO_SETTINGS_MODULE``, as
    ``manage.py`` does), then return the outbox store on ``using``."""
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    from .store import WorkerOutboxStore

    return WorkerOutboxStore(using=using)


def engine_store(
    using: str | None = None, *, process: bool = False
) -> SignalingOutboxStore:
    """The store ``thorn_worker`` and ``serve`` give their engine.

    Its tries send the delivery signals once recorded. With ``process``
    the database work runs in a process of its own
    (:class:`~thorn.engine.process.ProcessStore`): the signals are still
    sent here, in the engine's database thread.
    """
    from ..engine.process import ProcessStore
    from ..signals import SignalingOutboxStore
    from .store import WorkerOutboxStore

    if process:
        return SignalingOutboxStore(ProcessStore(worker_store, using))
    return SignalingOutboxStore(WorkerOutboxStore(using=using))
