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


def worker_store(using: str | None = None, gc_threshold: int = 0) -> WorkerOutboxStore:
    """Set Django up if it is not yet (from ``DJANGO_SETTINGS_MODULE``, as
    ``manage.py`` does), then return the outbox store on ``using``.

    ``gc_threshold`` above 0: then tune this process's garbage collector
    (:func:`thorn.engine.tuning.tune_gc`), as ``thorn_worker`` does; for
    the store's own process."""
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    from ..engine.tuning import tune_gc
    from .store import WorkerOutboxStore

    store = WorkerOutboxStore(using=using)
    tune_gc(gc_threshold)
    return store


def engine_store(
    using: str | None = None, *, process: bool = False, gc_threshold: int = 0
) -> SignalingOutboxStore:
    """The store ``thorn_worker`` and ``serve`` give their engine.

    Its tries send the delivery signals once recorded. With ``process``
    the database work runs in a process of its own
    (:class:`~thorn.engine.process.ProcessStore`): the signals are still
    sent here, in the engine's database thread; ``gc_threshold`` is then
    that process's (see :func:`worker_store`).
    """
    from ..engine.process import ProcessStore
    from ..signals import SignalingOutboxStore
    from .store import WorkerOutboxStore

    if process:
        return SignalingOutboxStore(ProcessStore(worker_store, using, gc_threshold))
    return SignalingOutboxStore(WorkerOutboxStore(using=using))
