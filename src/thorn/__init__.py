"""Python Webhook and Event Framework."""

from __future__ import annotations

from .__about__ import __version__
from .app import Thorn
from .buffer import buffer_events
from .decorators import webhook_model
from .events import Event, ModelEvent
from .exceptions import (
    BufferNotEmpty,
    ImproperlyConfigured,
    SecurityError,
    ThornError,
)
from .filters import Q
from .request import Request
from .reverse import model_reverser
from .subscribers import Subscriber

__all__ = [
    "BufferNotEmpty",
    "Event",
    "ImproperlyConfigured",
    "ModelEvent",
    "Q",
    "Request",
    "SecurityError",
    "Subscriber",
    "Thorn",
    "ThornError",
    "__version__",
    "buffer_events",
    "model_reverser",
    "webhook_model",
]
