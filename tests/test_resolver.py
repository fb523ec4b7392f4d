"""Tests for thorn.transport.resolver: literal short cut, de-duplication, cache."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from thorn.exceptions import ConnectionFailed, ImproperlyConfigured
from thorn.transport.resolver import IPAddress, Resolver, default_resolver

LOOPBACK = IPv4Address("127.0.0.1")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingResolver(Resolver):
    """Answers from a table instead of DNS, counting the lookups."""

    def __init__(self, answers: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answers = answers
        self.lookups: list[str] = []

    def _answer(self, host: str) -> tuple[IPAddress, ...]:
        self.lookups.append(host)
        if host not in self.answers:
            raise ConnectionFailed(f"could not resolve {host}: unknown")
        return tuple(ip_address(a) for a in self.answers[host])

    def lookup_sync(self, host: str, port: int) -> tuple[IPAddress, ...]:
        return self._answer(host)

    async def lookup(self, host: str, port: int) -> tuple[IPAddress, ...]:
        return self._answer(host)


def _fail_on_lookup(*args: object, **kwargs: object) -> Any:
    raise AssertionError("no lookup expected")


def _infos(*hosts: str) -> list[tuple[Any, ...]]:
    infos: list[tuple[Any, ...]] = []
    for host in hosts:
        if ":" in host:
            infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (host, 80, 0, 0)))
        else:
            infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, 80)))
    return infos


def test_localhost_resolves_to_loopback_synchronously() -> None:
    addresses = Resolver().resolve_sync("localhost", 80)
    assert addresses
    assert all(a.is_loopback for a in addresses)


def test_localhost_resolves_to_loopback_asynchronously() -> None:
    addresses = asyncio.run(Resolver().resolve("localhost", 80))
    assert addresses
    assert all(a.is_loopback for a in addresses)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", LOOPBACK),
        ("::1", IPv6Address("::1")),
        ("[::1]", IPv6Address("::1")),
        ("::ffff:7f00:1", IPv6Address("::ffff:127.0.0.1")),
    ],
)
def test_an_ip_literal_resolves_to_itself_without_a_lookup(
    monkeypatch: pytest.MonkeyPatch, host: str, expected: IPAddress
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _fail_on_lookup)
    resolver = Resolver()
    assert resolver.resolve_sync(host, 80) == (expected,)
    assert asyncio.run(resolver.resolve(host, 80)) == (expected,)


def test_results_are_deduplicated_in_order_and_mapped_addresses_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake(host: str, port: int, **kwargs: object) -> list[tuple[Any, ...]]:
        return _infos("::ffff:7f00:1", "192.0.2.1", "::ffff:7f00:1", "2001:db8::1")

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    assert Resolver().resolve_sync("example.test", 80) == (
        IPv6Address("::ffff:127.0.0.1"),
        IPv4Address("192.0.2.1"),
        IPv6Address("2001:db8::1"),
    )


def test_the_async_lookup_uses_the_event_loop_with_stream_sockets() -> None:
    seen: dict[str, Any] = {}

    async def main() -> tuple[IPAddress, ...]:
        loop = asyncio.get_running_loop()

        async def fake(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
            seen.update(kwargs, host=host, port=port)
            return _infos("192.0.2.7", "192.0.2.7")

        setattr(loop, "getaddrinfo", fake)  # noqa: B010 - patching the loop
        return await Resolver().resolve("example.test", 443)

    assert asyncio.run(main()) == (IPv4Address("192.0.2.7"),)
    assert seen == {"host": "example.test", "port": 443, "type": socket.SOCK_STREAM}


def _no_such_name(*args: object, **kwargs: object) -> Any:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_a_name_that_does_not_resolve_raises_connection_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_such_name)
    with pytest.raises(
        ConnectionFailed,
        match=r"^could not resolve nothing\.invalid: Name or service not known$",
    ):
        Resolver().resolve_sync("nothing.invalid", 80)


def test_an_async_failure_raises_connection_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_such_name)
    with pytest.raises(ConnectionFailed, match=r"could not resolve nothing\.invalid"):
        asyncio.run(Resolver().resolve("nothing.invalid", 80))


def test_a_name_the_system_cannot_encode_raises_connection_failed() -> None:
    with pytest.raises(ConnectionFailed, match="could not resolve"):
        Resolver().resolve_sync("a" * 70 + ".test", 80)


def test_an_answer_without_ip_addresses_raises_connection_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [])
    with pytest.raises(ConnectionFailed, match="no IPv4 or IPv6 address"):
        Resolver().resolve_sync("example.test", 80)


def test_answers_are_cached_until_the_ttl_passes() -> None:
    clock = Clock()
    resolver = CountingResolver({"a.test": ["192.0.2.1"]}, ttl=10, clock=clock)
    assert resolver.resolve_sync("a.test", 80) == (IPv4Address("192.0.2.1"),)
    clock.now += 9.9
    resolver.resolve_sync("a.test", 80)
    assert resolver.lookups == ["a.test"]
    clock.now += 0.1
    resolver.resolve_sync("a.test", 80)
    assert resolver.lookups == ["a.test", "a.test"]


def test_the_cache_is_shared_by_sync_and_async_resolution() -> None:
    resolver = CountingResolver({"a.test": ["192.0.2.1"]})
    resolver.resolve_sync("a.test", 80)
    assert asyncio.run(resolver.resolve("a.test", 443)) == (IPv4Address("192.0.2.1"),)
    assert resolver.lookups == ["a.test"]


def test_the_cache_ignores_the_case_of_the_name() -> None:
    resolver = CountingResolver({"a.test": ["192.0.2.1"], "A.TEST": ["192.0.2.1"]})
    resolver.resolve_sync("a.test", 80)
    resolver.resolve_sync("A.TEST", 80)
    assert resolver.lookups == ["a.test"]


def test_clear_empties_the_cache() -> None:
    resolver = CountingResolver({"a.test": ["192.0.2.1"]})
    resolver.resolve_sync("a.test", 80)
    resolver.clear()
    resolver.resolve_sync("a.test", 80)
    assert resolver.lookups == ["a.test", "a.test"]


def test_a_zero_ttl_disables_the_cache() -> None:
    resolver = CountingResolver({"a.test": ["192.0.2.1"]}, ttl=0)
    resolver.resolve_sync("a.test", 80)
    resolver.resolve_sync("a.test", 80)
    assert resolver.lookups == ["a.test", "a.test"]


def test_failures_are_not_cached() -> None:
    resolver = CountingResolver({})
    for _ in range(2):
        with pytest.raises(ConnectionFailed):
            resolver.resolve_sync("missing.test", 80)
    assert resolver.lookups == ["missing.test", "missing.test"]


def test_the_oldest_entry_leaves_a_full_cache_first() -> None:
    answers = {f"h{i}.test": [f"192.0.2.{i}"] for i in range(4)}
    resolver = CountingResolver(answers, max_entries=3)
    for i in range(4):
        resolver.resolve_sync(f"h{i}.test", 80)
    resolver.lookups.clear()
    for i in (1, 2, 3, 0):
        resolver.resolve_sync(f"h{i}.test", 80)
    assert resolver.lookups == ["h0.test"]


def test_expired_entries_leave_a_full_cache_before_fresh_ones() -> None:
    clock = Clock()
    answers = {f"h{i}.test": [f"192.0.2.{i}"] for i in range(3)}
    resolver = CountingResolver(answers, max_entries=2, ttl=10, clock=clock)
    resolver.resolve_sync("h0.test", 80)
    clock.now += 5
    resolver.resolve_sync("h1.test", 80)
    clock.now += 6  # h0 has expired, h1 has not
    resolver.resolve_sync("h2.test", 80)
    resolver.lookups.clear()
    resolver.resolve_sync("h1.test", 80)
    resolver.resolve_sync("h2.test", 80)
    assert resolver.lookups == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl": -1},
        {"ttl": "30"},
        {"ttl": True},
        {"max_entries": -1},
        {"max_entries": 1.5},
    ],
)
def test_bad_arguments_are_improperly_configured(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ImproperlyConfigured):
        Resolver(**kwargs)


def test_options_are_keyword_only() -> None:
    make: Callable[..., Resolver] = Resolver
    with pytest.raises(TypeError):
        make(30.0)


def test_the_default_resolver_is_shared() -> None:
    assert default_resolver() is default_resolver()
    assert isinstance(default_resolver(), Resolver)
    assert default_resolver().ttl == 30.0
