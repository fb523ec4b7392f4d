"""Python Webhook and Event Framework."""

from __future__ import annotations

from .__about__ import __version__
from .app import Thorn
from .buffer import buffer_events
from .events import Event
from .exceptions import (
    BufferNotEmpty,
    ImproperlyConfigured,
    SecurityError,
    ThornError,
)
from .filters import Q
from .request import Request
from .subscribers import Subscriber

__all__ = [
    "BufferNotEmpty",
    "Event",
    "ImproperlyConfigured",
    "Q",
    "Request",
    "SecurityError",
    "Subscriber",
    "Thorn",
    "ThornError",
    "__version__",
    "buffer_events",
]
