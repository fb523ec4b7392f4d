"""The delivery engine: claim due deliveries, post them concurrently, record."""

from __future__ import annotations

from .core import DeliveryEngine
from .memory import MemoryStore
from .process import ProcessStore, StoreProcessError
from .store import AttemptResult, DeliveryTask, OutboxStore

__all__ = [
    "AttemptResult",
    "DeliveryEngine",
    "DeliveryTask",
    "MemoryStore",
    "OutboxStore",
    "ProcessStore",
    "StoreProcessError",
]
