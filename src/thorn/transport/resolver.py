"""Resolve host names to IP addresses, with a TTL cache shared by sync and async."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address
from typing import Any, TypeAlias

from thorn.exceptions import ConnectionFailed, ImproperlyConfigured

__all__ = ["IPAddress", "Resolver", "default_resolver"]

IPAddress: TypeAlias = IPv4Address | IPv6Address

_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class Resolver:
    """Resolve host names with the system resolver (``getaddrinfo``).

    * An IP literal resolves to itself, without a lookup.
    * Addresses come back de-duplicated, in the order the system gave them;
      IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are kept as they are,
      so validators see exactly what a socket would connect to.
    * Answers are cached for ``ttl`` seconds (monotonic clock), at most
      ``max_entries`` host names, oldest first out; ``ttl=0`` disables the
      cache.  :meth:`resolve` and :meth:`resolve_sync` share it.
    * A failed lookup raises :class:`~thorn.exceptions.ConnectionFailed`.

    Subclasses may override :meth:`lookup` and :meth:`lookup_sync` (the
    uncached lookups) to use another source of answers.
    """

    def __init__(
        self,
        *,
        ttl: float = 30.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 0:
            raise ImproperlyConfigured(
                f"Resolver ttl must be a number of seconds >= 0, not {ttl!r}"
            )
        if (
            isinstance(max_entries, bool)
            or not isinstance(max_entries, int)
            or max_entries < 0
        ):
            raise ImproperlyConfigured(
                f"Resolver max_entries must be an int >= 0, not {max_entries!r}"
            )
        self.ttl = float(ttl)
        self.max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[IPAddress, ...]]] = {}
        self._lock = threading.Lock()

    async def resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """The addresses of ``host``, looked up without blocking the loop."""
        literal = _literal(host)
        if literal is not None:
            return (literal,)
        cached = self._cached(host)
        if cached is not None:
            return cached
        addresses = await self.lookup(host, port)
        self._store(host, addresses)
        return addresses

    def resolve_sync(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """The addresses of ``host``, looked up in this thread."""
        literal = _literal(host)
        if literal is not None:
            return (literal,)
        cached = self._cached(host)
        if cached is not None:
            return cached
        addresses = self.lookup_sync(host, port)
        self._store(host, addresses)
        return addresses

    async def lookup(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """Ask the system resolver, bypassing the cache (asynchronous)."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            raise _failure(host, exc) from exc
        return _addresses(host, infos)

    def lookup_sync(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """Ask the system resolver, bypassing the cache (blocking)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            raise _failure(host, exc) from exc
        return _addresses(host, infos)

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._cache.clear()

    def _cached(self, host: str) -> tuple[IPAddress, ...] | None:
        key = host.lower()
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            expires, addresses = entry
            if self._clock() >= expires:
                del self._cache[key]
                return None
            return addresses

    def _store(self, host: str, addresses: tuple[IPAddress, ...]) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        key = host.lower()
        now = self._clock()
        with self._lock:
            self._cache.pop(key, None)
            if len(self._cache) >= self.max_entries:
                for stale in [k for k, (exp, _) in self._cache.items() if exp <= now]:
                    del self._cache[stale]
            while len(self._cache) >= self.max_entries:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = (now + self.ttl, addresses)

    def __repr__(self) -> str:
        return f"Resolver(ttl={self.ttl!r}, max_entries={self.max_entries!r})"


_DEFAULT = Resolver()


def default_resolver() -> Resolver:
    """The process-wide resolver used when none is given."""
    return _DEFAULT


def _literal(host: str) -> IPAddress | None:
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _addresses(host: str, infos: Iterable[tuple[Any, ...]]) -> tuple[IPAddress, ...]:
    found: dict[IPAddress, None] = {}
    for info in infos:
        family, sockaddr = info[0], info[4]
        if family not in _FAMILIES:
            continue
        try:
            address = ipaddress.ip_address(sockaddr[0])
        except (ValueError, TypeError):
            continue
        found.setdefault(address, None)
    if not found:
        raise ConnectionFailed(f"could not resolve {host}: no IPv4 or IPv6 address")
    return tuple(found)


def _failure(host: str, exc: BaseException) -> ConnectionFailed:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return ConnectionFailed(f"could not resolve {host}: {reason}")
