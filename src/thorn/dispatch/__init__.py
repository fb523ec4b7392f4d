"""Dispatchers: how requests reach subscribers (default, disabled, outbox, celery)."""

from __future__ import annotations

from .base import Dispatcher

__all__ = ["Dispatcher"]
