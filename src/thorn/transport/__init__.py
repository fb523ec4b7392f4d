"""HTTP transport: parse once, resolve once, validate, connect to what was checked."""

from __future__ import annotations

from .client import AsyncClient, Response, SyncClient

__all__ = ["AsyncClient", "Response", "SyncClient"]
