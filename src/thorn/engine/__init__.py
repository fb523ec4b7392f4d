"""The delivery engine: claim due deliveries, post them concurrently, record."""

from __future__ import annotations

from .store import AttemptResult, DeliveryTask, OutboxStore

__all__ = ["AttemptResult", "DeliveryTask", "OutboxStore"]
