"""User-defined webhook events: ``Event`` and ``ModelEvent``."""

from __future__ import annotations

from .base import Event
from .model import ModelEvent, PreparedMessage

__all__ = ["Event", "ModelEvent", "PreparedMessage"]
