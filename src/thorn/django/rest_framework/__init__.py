"""Django REST Framework API where users manage their webhook subscriptions."""

from __future__ import annotations

__all__: list[str] = []
