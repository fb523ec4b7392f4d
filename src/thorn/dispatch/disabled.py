"""Dispatcher doing nothing: events are accepted and dropped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..request import Request
from .base import Dispatcher as BaseDispatcher

__all__ = ["DisabledDispatcher", "Dispatcher"]


class DisabledDispatcher(BaseDispatcher):
    """Send nothing (development, tests, maintenance windows)."""

    def send(
        self,
        event: str,
        payload: Any,
        sender: Any,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Request]:
        return []


Dispatcher = DisabledDispatcher
