"""Tests for thorn.validators: what may be delivered to, and the JSON form."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, ClassVar

import pytest

from thorn.exceptions import (
    ConnectionFailed,
    ImproperlyConfigured,
    RecipientRejected,
    SecurityError,
)
from thorn.transport.resolver import IPAddress, Resolver
from thorn.transport.url import InvalidURL, parse_url
from thorn.validators import (
    BlockInternalIPs,
    EnsurePort,
    Recipient,
    RecipientValidator,
    avalidate_recipient,
    block_cidr_network,
    block_internal_ips,
    default_validators,
    deserialize_validators,
    ensure_port,
    ensure_protocol,
    internal_address_reason,
    serialize_validators,
    validate_recipient,
    validator_from_dict,
)


def _url_for(address: str) -> str:
    return f"http://[{address}]/" if ":" in address else f"http://{address}/"


class TableResolver(Resolver):
    """Answers from a table instead of DNS (for names no real DNS can give)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        super().__init__(ttl=0)
        self.answers = answers
        self.lookups: list[str] = []

    def _answer(self, host: str) -> tuple[IPAddress, ...]:
        self.lookups.append(host)
        return tuple(ip_address(a) for a in self.answers[host])

    def lookup_sync(self, host: str, port: int) -> tuple[IPAddress, ...]:
        return self._answer(host)

    async def lookup(self, host: str, port: int) -> tuple[IPAddress, ...]:
        return self._answer(host)


class NoLookupResolver(Resolver):
    """Fails the test if anything is looked up."""

    def lookup_sync(self, host: str, port: int) -> tuple[IPAddress, ...]:
        raise AssertionError(f"unexpected lookup of {host}")

    async def lookup(self, host: str, port: int) -> tuple[IPAddress, ...]:
        raise AssertionError(f"unexpected lookup of {host}")


def only_example_dot_com(url: str) -> None:
    """An old-style (Thorn 1.x) user validator taking the URL string."""
    if "example.com" not in url:
        raise ValueError("only example.com")


# -- block_internal_ips: every special-purpose range ----------------------

BLOCKED = [
    # IPv4 special-purpose registry, multicast and broadcast
    ("0.0.0.0", "'this network'"),
    ("0.255.255.255", "'this network'"),
    ("10.0.0.1", "private-use"),
    ("10.255.255.255", "private-use"),
    ("100.64.0.1", "shared"),
    ("100.127.255.255", "shared"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local"),
    ("172.16.0.1", "private-use"),
    ("172.31.255.255", "private-use"),
    ("192.0.0.1", "IETF protocol assignment"),
    ("192.0.0.9", "IETF protocol assignment"),
    ("192.0.0.10", "IETF protocol assignment"),
    ("192.0.0.170", "IETF protocol assignment"),
    ("192.0.2.1", "documentation"),
    ("192.31.196.1", "AS112"),
    ("192.52.193.1", "AMT"),
    ("192.88.99.1", "6to4 relay"),
    ("192.168.1.1", "private-use"),
    ("192.175.48.1", "AS112"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.255", "multicast"),
    ("240.0.0.1", "reserved"),
    ("254.255.255.255", "reserved"),
    ("255.255.255.255", "limited broadcast"),
    # IPv6 special-purpose registry and address space
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped address of 127.0.0.1, a loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped address of 10.0.0.1, a private-use"),
    ("::ffff:0.0.0.0", "IPv4-mapped address of 0.0.0.0"),
    # IPv4-compatible (::/96) is deprecated: refused whatever it carries
    ("::127.0.0.1", "IPv4-compatible address (deprecated"),
    ("::169.254.169.254", "IPv4-compatible address (deprecated"),
    ("::8.8.8.8", "IPv4-compatible address (deprecated"),
    ("::2", "IPv4-compatible address (deprecated"),
    ("64:ff9b::7f00:1", "NAT64 address of 127.0.0.1, a loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 address of 169.254.169.254"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("100::1", "discard-only"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:1::1", "IETF protocol assignment"),
    ("2001:2::1", "benchmarking"),
    ("2001:3::1", "IETF protocol assignment"),
    ("2001:4:112::1", "IETF protocol assignment"),
    ("2001:10::1", "ORCHID"),
    ("2001:20::1", "ORCHIDv2"),
    ("2001:1ff:ffff::1", "IETF protocol assignment"),
    ("2001:db8::1", "documentation"),
    ("2001:db8:ffff::1", "documentation"),
    ("2002:7f00:1::", "6to4 address of 127.0.0.1, a loopback"),
    ("2002:c0a8:101::1", "6to4 address of 192.168.1.1, a private-use"),
    ("2002:a9fe:a9fe::", "6to4 address of 169.254.169.254"),
    ("2620:4f:8000::1", "AS112"),
    ("3fff::1", "documentation"),
    ("3fff:fff:ffff::1", "documentation"),
    ("5f00::1", "segment routing"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("1::1", "outside the global unicast range"),
    ("4000::1", "outside the global unicast range"),
    ("::1:0:0:0", "outside the global unicast range"),
]

ALLOWED = [
    # neighbours of the IPv4 ranges, just outside them
    "1.0.0.1",
    "8.8.8.8",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "191.255.255.255",
    "192.0.1.0",
    "192.0.3.0",
    "192.31.195.255",
    "192.31.197.0",
    "192.52.192.255",
    "192.52.194.0",
    "192.88.98.255",
    "192.88.100.0",
    "192.167.255.255",
    "192.169.0.0",
    "192.175.47.255",
    "192.175.49.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.255",
    # global IPv6, and IPv6 forms that carry a global IPv4 address
    "2606:4700:4700::1111",
    "2a00:1450:4001::1",
    "2000::1",
    "2001:200::1",
    "2001:db7:ffff::1",
    "2001:db9::1",
    "2620:4f:7fff::1",
    "2620:4f:8001::1",
    "3ffe::1",
    "3fff:1000::1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_every_special_purpose_address_is_refused(address: str, reason: str) -> None:
    with pytest.raises(RecipientRejected, match="block_internal_ips") as info:
        validate_recipient(_url_for(address), [block_internal_ips()])
    assert reason in str(info.value)


@pytest.mark.parametrize("address", ALLOWED)
def test_neighbouring_global_addresses_pass(address: str) -> None:
    recipient = validate_recipient(_url_for(address), [block_internal_ips()])
    assert recipient.addresses == (ip_address(address),)


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_internal_address_reason_names_the_range(address: str, reason: str) -> None:
    found = internal_address_reason(ip_address(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize("address", ALLOWED)
def test_internal_address_reason_is_none_for_global_addresses(address: str) -> None:
    assert internal_address_reason(ip_address(address)) is None


def test_a_scoped_link_local_address_is_refused() -> None:
    assert internal_address_reason(IPv6Address("fe80::1%eth0")) == "link-local address"


def test_an_ipv4_compatible_address_is_refused_with_what_to_write() -> None:
    with pytest.raises(RecipientRejected) as info:
        validate_recipient("http://[::8.8.8.8]/", [block_internal_ips()])
    assert "write the IPv4 address itself" in str(info.value)


def test_the_refusal_message_names_the_host_and_the_reason() -> None:
    with pytest.raises(RecipientRejected) as info:
        validate_recipient("http://127.0.0.1/")
    assert str(info.value).startswith(
        "refusing to deliver to 127.0.0.1: loopback address (block_internal_ips)"
    )


def test_refusals_are_security_errors_and_value_errors() -> None:
    with pytest.raises(SecurityError):
        validate_recipient("http://10.0.0.1/")
    with pytest.raises(ValueError):
        validate_recipient("http://10.0.0.1/")


# -- spellings an attacker might try --------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://0x7f.0.0.1/",
        "http://127.1/",
        "http://127.0.1/",
        "http://127.0.0.1./",
        "http://0/",
        "http://167772161/",
        "http://012.0.0.1/",
        "http://0xa000001/",
        "http://0xa.0.0.1/",
        "http://10.1/",
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://0xa9fea9fe/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://169.254.43518/",
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",
    ],
)
def test_decimal_octal_hex_and_short_spellings_of_internal_addresses_are_refused(
    url: str,
) -> None:
    with pytest.raises(RecipientRejected):
        validate_recipient(url, resolver=NoLookupResolver())


def test_octal_spelling_of_loopback_is_refused() -> None:
    with pytest.raises(RecipientRejected, match=r"127\.0\.0\.1: loopback"):
        validate_recipient("http://0177.0.0.1/")


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[::1]/",
        "http://[0:0:0:0:0:0:0:1]/",
        "http://[::]/",
    ],
)
def test_loopback_hidden_in_ipv6_is_refused(url: str) -> None:
    with pytest.raises(RecipientRejected, match="block_internal_ips"):
        validate_recipient(url, resolver=NoLookupResolver())


def test_the_host_after_userinfo_is_the_one_validated() -> None:
    with pytest.raises(RecipientRejected, match=r"to 127\.0\.0\.1: loopback"):
        validate_recipient("http://example.com@127.0.0.1/")


def test_a_backslash_before_an_at_sign_is_invalid() -> None:
    with pytest.raises(InvalidURL):
        validate_recipient("http://127.0.0.1\\@example.com/")


def test_an_ipv6_zone_id_is_invalid() -> None:
    with pytest.raises(InvalidURL):
        validate_recipient("http://[fe80::1%25eth0]/")


# -- host names -----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LOCALHOST./",
        "https://localhost:443/hook",
        "http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/",
    ],
)
def test_localhost_resolves_to_loopback_and_is_refused(url: str) -> None:
    with pytest.raises(
        RecipientRejected,
        match=r"to localhost \(127\.0\.0\.1\): loopback address \(block_internal_ips\)",
    ):
        validate_recipient(url, resolver=Resolver())


def test_localhost_is_refused_asynchronously() -> None:
    with pytest.raises(RecipientRejected, match=r"localhost \(127\.0\.0\.1\)"):
        asyncio.run(avalidate_recipient("http://localhost/", resolver=Resolver()))


def test_the_default_resolver_is_used_when_none_is_given() -> None:
    with pytest.raises(RecipientRejected, match="localhost"):
        validate_recipient("http://localhost/")


def test_a_name_is_refused_if_any_of_its_addresses_is_internal() -> None:
    # No public name resolves to both kinds without the network: a table does.
    resolver = TableResolver({"mixed.test": ["8.8.8.8", "10.1.2.3"]})
    with pytest.raises(
        RecipientRejected, match=r"mixed\.test \(10\.1\.2\.3\): private-use"
    ):
        validate_recipient("http://mixed.test/", resolver=resolver)


def test_a_name_with_only_global_addresses_passes_and_keeps_them() -> None:
    resolver = TableResolver({"public.test": ["8.8.8.8", "2606:4700:4700::1111"]})
    recipient = validate_recipient("https://public.test/hook", resolver=resolver)
    assert recipient.addresses == (
        IPv4Address("8.8.8.8"),
        IPv6Address("2606:4700:4700::1111"),
    )
    assert resolver.lookups == ["public.test"]


def test_an_unresolvable_name_raises_connection_failed() -> None:
    class Failing(Resolver):
        def lookup_sync(self, host: str, port: int) -> tuple[IPAddress, ...]:
            raise ConnectionFailed(f"could not resolve {host}: no such name")

    with pytest.raises(ConnectionFailed, match="could not resolve"):
        validate_recipient("http://nowhere.test/", resolver=Failing())


def test_names_are_not_resolved_when_no_validator_needs_addresses() -> None:
    recipient = validate_recipient(
        "http://localhost/",
        [ensure_protocol("http"), ensure_port(80)],
        resolver=NoLookupResolver(),
    )
    assert recipient.addresses == ()


def test_ip_literals_are_never_looked_up() -> None:
    recipient = validate_recipient("http://8.8.8.8/", resolver=NoLookupResolver())
    assert recipient.addresses == (IPv4Address("8.8.8.8"),)
    recipient = asyncio.run(
        avalidate_recipient("http://[2606:4700::1]/", resolver=NoLookupResolver())
    )
    assert recipient.addresses == (IPv6Address("2606:4700::1"),)


def test_async_validation_resolves_with_the_async_lookup() -> None:
    class AsyncOnly(TableResolver):
        def lookup_sync(self, host: str, port: int) -> tuple[IPAddress, ...]:
            raise AssertionError("blocking lookup inside the event loop")

    resolver = AsyncOnly({"public.test": ["8.8.4.4"]})
    recipient = asyncio.run(
        avalidate_recipient("http://public.test/", resolver=resolver)
    )
    assert recipient.addresses == (IPv4Address("8.8.4.4"),)


def test_a_validator_called_directly_on_an_unresolved_name_resolves_it() -> None:
    with pytest.raises(RecipientRejected, match="localhost"):
        block_internal_ips()(Recipient(parse_url("http://localhost/")))


def test_an_ip_literal_host_is_checked_whatever_addresses_say() -> None:
    recipient = Recipient(parse_url("http://127.0.0.1/"), [IPv4Address("8.8.8.8")])
    with pytest.raises(RecipientRejected, match="loopback"):
        block_internal_ips()(recipient)


def test_a_validator_called_directly_on_a_plain_string_parses_it() -> None:
    with pytest.raises(RecipientRejected, match="loopback"):
        block_internal_ips()("http://127.0.0.1/")


# -- ensure_protocol ------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "expected"),
    [
        (("https",), ("https",)),
        (("http://",), ("http",)),
        (("HTTPS",), ("https",)),
        (("https:",), ("https",)),
        ((" Http:// ",), ("http",)),
        (("https", "http://", "HTTPS"), ("https", "http")),
    ],
)
def test_ensure_protocol_accepts_names_in_any_spelling(
    allowed: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert ensure_protocol(*allowed).allowed == expected


def test_ensure_protocol_allows_the_listed_schemes() -> None:
    validate_recipient("HTTPS://example.com/", [ensure_protocol("https")])


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "http://example.com/", "gopher://example.com:70/"]
)
def test_ensure_protocol_refuses_other_schemes(url: str) -> None:
    with pytest.raises(
        RecipientRejected,
        match=r"^refusing to deliver to example\.com: scheme '\w+' is not allowed; "
        r"use https \(ensure_protocol\)$",
    ):
        validate_recipient(url, [ensure_protocol("https")])


@pytest.mark.parametrize(
    "allowed", [(), ("",), ("ht tp",), ("1http",), (42,), (None,), ("h\u00e9",)]
)
def test_ensure_protocol_with_bad_arguments_is_improperly_configured(
    allowed: tuple[Any, ...],
) -> None:
    with pytest.raises(ImproperlyConfigured):
        ensure_protocol(*allowed)


# -- ensure_port ----------------------------------------------------------


def test_ensure_port_accepts_ints_and_numeric_strings() -> None:
    assert ensure_port(80, "443", " 8080 ", 80).allowed == (80, 443, 8080)


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "https://example.com/", "https://example.com:80/"],
)
def test_ensure_port_allows_explicit_and_default_ports(url: str) -> None:
    validate_recipient(url, [ensure_port(80, 443)])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com:8080/", "port 8080 is not allowed; use one of 80, 443"),
        ("https://example.com:22/", "port 22 is not allowed"),
        ("ftp://example.com/", "the URL has no port and scheme 'ftp' has no default"),
    ],
)
def test_ensure_port_refuses_other_ports(url: str, message: str) -> None:
    with pytest.raises(RecipientRejected, match=r"\(ensure_port\)$") as info:
        validate_recipient(url, [ensure_port(80, 443)])
    assert message in str(info.value)


@pytest.mark.parametrize(
    "allowed",
    [(), (0,), (65536,), (-1,), ("http",), (True,), (1.5,), ("\uff18\uff10",)],
)
def test_ensure_port_with_bad_arguments_is_improperly_configured(
    allowed: tuple[Any, ...],
) -> None:
    with pytest.raises(ImproperlyConfigured):
        ensure_port(*allowed)


# -- block_cidr_network ---------------------------------------------------


def test_block_cidr_network_refuses_addresses_in_the_networks() -> None:
    check = block_cidr_network("93.184.0.0/16", "2001:4860::/32")
    with pytest.raises(
        RecipientRejected,
        match=r"93\.184\.215\.14 is in the blocked network 93\.184\.0\.0/16 "
        r"\(block_cidr_network\)",
    ):
        validate_recipient("http://93.184.215.14/", [check])
    with pytest.raises(RecipientRejected, match="2001:4860::/32"):
        validate_recipient("http://[2001:4860::8888]/", [check])


def test_block_cidr_network_allows_addresses_outside_the_networks() -> None:
    check = block_cidr_network("93.184.0.0/16")
    validate_recipient("http://93.185.0.1/", [check])
    validate_recipient("http://[2606:4700::1]/", [check])


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:93.184.215.14]/",
        "http://[64:ff9b::5db8:d70e]/",
        "http://[2002:5db8:d70e::1]/",
    ],
)
def test_block_cidr_network_sees_ipv4_addresses_inside_ipv6(url: str) -> None:
    with pytest.raises(RecipientRejected, match=r"93\.184\.0\.0/16"):
        validate_recipient(url, [block_cidr_network("93.184.0.0/16")])


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),  # IPv4-mapped
        ("::10.0.0.1", "10.0.0.1"),  # IPv4-compatible
        ("64:ff9b::a00:1", "10.0.0.1"),  # NAT64
        ("2002:a00:1::1", "10.0.0.1"),  # 6to4
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1"),  # Teredo client
    ],
)
def test_block_cidr_network_looks_inside_every_ipv4_carrying_form(
    address: str, inside: str
) -> None:
    with pytest.raises(RecipientRejected) as info:
        validate_recipient(f"http://[{address}]/", [block_cidr_network("10.0.0.0/8")])
    message = str(info.value)
    assert f"{ip_address(address)} carries {inside}" in message
    assert "blocked network 10.0.0.0/8" in message


def test_block_cidr_network_does_not_read_the_loopback_as_ipv4_compatible() -> None:
    check = block_cidr_network("0.0.0.0/8")
    validate_recipient("http://[::1]/", [check])
    validate_recipient("http://[::]/", [check])
    with pytest.raises(RecipientRejected):
        validate_recipient("http://[::2]/", [check])


def test_block_cidr_network_sees_ipv4_addresses_as_mapped_ipv6() -> None:
    with pytest.raises(RecipientRejected, match="block_cidr_network"):
        validate_recipient(
            "http://93.184.215.14/", [block_cidr_network("::ffff:93.184.0.0/112")]
        )


def test_block_cidr_network_checks_resolved_names() -> None:
    with pytest.raises(RecipientRejected, match=r"localhost \(127\.0\.0\.1\)"):
        validate_recipient("http://localhost/", [block_cidr_network("127.0.0.0/8")])


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        (("192.168.0.1/24",), "did you mean '192.168.0.0/24'"),
        (("not a network",), "not a CIDR network"),
        (("10.0.0.0/33",), "not a CIDR network"),
        ((42,), "CIDR strings"),
        ((), "at least one network"),
    ],
)
def test_block_cidr_network_with_bad_networks_is_improperly_configured(
    networks: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        block_cidr_network(*networks)


# -- defaults and user validators -----------------------------------------


def test_the_default_validators_are_the_manuals() -> None:
    assert default_validators() == [
        block_internal_ips(),
        ensure_protocol("http", "https"),
        ensure_port(80, 443),
    ]


@pytest.mark.parametrize(
    ("url", "validator"),
    [
        ("http://10.0.0.1/", "block_internal_ips"),
        ("ftp://8.8.8.8:80/", "ensure_protocol"),
        ("https://8.8.8.8:8443/", "ensure_port"),
    ],
)
def test_the_defaults_refuse_internal_addresses_other_schemes_and_ports(
    url: str, validator: str
) -> None:
    with pytest.raises(RecipientRejected, match=validator):
        validate_recipient(url)


def test_the_defaults_allow_public_http_and_https() -> None:
    assert validate_recipient("https://8.8.8.8/hook") == "https://8.8.8.8/hook"
    assert validate_recipient("http://8.8.8.8:80/") == "http://8.8.8.8:80/"


def test_old_style_validators_receive_the_url_string() -> None:
    seen: list[object] = []

    def record(url: str) -> None:
        seen.append(url)

    validate_recipient("https://U:P@Example.com/x#f", [record])
    assert seen == ["https://U:P@Example.com/x#f"]
    assert isinstance(seen[0], Recipient)


def test_user_validators_may_refuse() -> None:
    validate_recipient("https://example.com/", [only_example_dot_com])
    with pytest.raises(ValueError, match=r"only example\.com"):
        validate_recipient("https://example.org/", [only_example_dot_com])


def test_user_validators_can_ask_for_addresses() -> None:
    seen: list[tuple[IPAddress, ...]] = []

    def record(recipient: Recipient) -> None:
        seen.append(recipient.addresses)

    record.needs_addresses = True  # type: ignore[attr-defined]
    validate_recipient("http://localhost/", [record], resolver=Resolver())
    assert len(seen) == 1
    assert seen[0]
    assert all(address.is_loopback for address in seen[0])


def test_an_async_validator_is_awaited_by_avalidate_recipient() -> None:
    seen: list[str] = []

    async def record(recipient: Recipient) -> None:
        seen.append(recipient.url.host)

    asyncio.run(avalidate_recipient("https://example.com/", [record]))
    assert seen == ["example.com"]


def test_an_async_validator_in_sync_validation_is_improperly_configured() -> None:
    async def record(recipient: Recipient) -> None:
        raise AssertionError("never awaited")

    with pytest.raises(ImproperlyConfigured, match="avalidate_recipient"):
        validate_recipient("https://example.com/", [record])


def test_serialized_validators_are_accepted_by_validate_recipient() -> None:
    with pytest.raises(RecipientRejected, match="ensure_port"):
        validate_recipient(
            "https://8.8.8.8:8443/", [{"name": "ensure_port", "args": [443]}]
        )


@pytest.mark.parametrize("validators", [[42], ["ensure_port"], "https", 42])
def test_validators_that_are_not_callables_are_improperly_configured(
    validators: Any,
) -> None:
    with pytest.raises(ImproperlyConfigured):
        validate_recipient("https://example.com/", validators)


def test_an_empty_list_of_validators_allows_everything() -> None:
    assert validate_recipient("gopher://127.0.0.1/", []) == "gopher://127.0.0.1/"


# -- no secret in any message ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "validators"),
    [
        ("http://u:s3cret@127.0.0.1/", None),
        ("http://u:s3cret@127.0.0.1/", [block_internal_ips()]),
        ("http://u:s3cret@localhost/", [block_internal_ips()]),
        ("ftp://u:s3cret@127.0.0.1/", [ensure_protocol("http")]),
        ("http://u:s3cret@127.0.0.1:8080/", [ensure_port(80)]),
        ("http://u:s3cret@127.0.0.1/", [block_cidr_network("127.0.0.0/8")]),
        ("http://u:s3cret@[::ffff:127.0.0.1]/", None),
        ("http://u:s3cret@127.0.0.1:99999/", None),
        ("http://u:s3cret@127.0.0.1\\@x/", None),
    ],
)
def test_no_message_contains_the_password(url: str, validators: Any) -> None:
    with pytest.raises(ValueError) as info:
        validate_recipient(url, validators)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(info.value)


def test_a_recipients_repr_hides_the_password() -> None:
    recipient = Recipient(parse_url("http://u:s3cret@example.com/"))
    assert "s3cret" not in repr(recipient)
    assert repr(recipient) == "Recipient('http://u:***@example.com/')"


# -- Recipient ------------------------------------------------------------


def test_a_recipient_is_the_url_string_with_the_parse_attached() -> None:
    text = "HTTP://Example.COM:80/a?b#c"
    recipient = Recipient(parse_url(text), [IPv4Address("8.8.8.8")])
    assert recipient == text
    assert isinstance(recipient, str)
    assert recipient.url.host == "example.com"
    assert recipient.addresses == (IPv4Address("8.8.8.8"),)


def test_a_recipient_can_be_made_from_a_string() -> None:
    assert Recipient("https://example.com/").url.port == 443


def test_a_recipient_survives_pickling() -> None:
    recipient = Recipient(
        parse_url("https://u:p@example.com/"), [IPv4Address("8.8.8.8")]
    )
    copy = pickle.loads(pickle.dumps(recipient))  # noqa: S301 - our own bytes
    assert copy == recipient
    assert copy.url == recipient.url
    assert copy.addresses == recipient.addresses


# -- JSON form ------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "data"),
    [
        (block_internal_ips(), {"name": "block_internal_ips", "args": []}),
        (
            ensure_protocol("HTTPS", "http://"),
            {"name": "ensure_protocol", "args": ["https", "http"]},
        ),
        (ensure_port(80, "443"), {"name": "ensure_port", "args": [80, 443]}),
        (
            block_cidr_network("10.0.0.0/8", "fd00::/8"),
            {"name": "block_cidr_network", "args": ["10.0.0.0/8", "fd00::/8"]},
        ),
    ],
)
def test_builtin_validators_round_trip_through_json(
    validator: RecipientValidator, data: dict[str, Any]
) -> None:
    assert validator.to_dict() == data
    assert json.loads(json.dumps(validator.to_dict())) == data
    assert validator_from_dict(data) == validator
    assert validator.name == data["name"]
    assert validator.args == tuple(data["args"])


def test_builtin_validators_are_immutable_and_hashable() -> None:
    check = ensure_port(80)
    with pytest.raises(AttributeError):
        check.allowed = (22,)  # type: ignore[misc]
    assert len({ensure_port(80), ensure_port("80"), ensure_port(443)}) == 2


def test_builtin_validators_repr_as_their_factory_call() -> None:
    assert repr(ensure_port(80, 443)) == "ensure_port(80, 443)"
    assert repr(block_internal_ips()) == "block_internal_ips()"


def test_validators_know_whether_they_need_addresses() -> None:
    assert block_internal_ips().needs_addresses is True
    assert block_cidr_network("10.0.0.0/8").needs_addresses is True
    assert ensure_protocol("https").needs_addresses is False
    assert ensure_port(443).needs_addresses is False


def test_constructing_the_classes_directly_normalises_arguments() -> None:
    assert EnsurePort(allowed=("443", 80)).allowed == (443, 80)  # type: ignore[arg-type]
    assert BlockInternalIPs() == block_internal_ips()


def test_a_list_of_validators_round_trips_with_user_callables() -> None:
    validators: list[Callable[..., object]] = [
        *default_validators(),
        only_example_dot_com,
    ]
    data = serialize_validators(validators)
    assert data[-1] == {"name": "callable", "path": f"{__name__}:only_example_dot_com"}
    assert json.loads(json.dumps(data)) == data
    assert deserialize_validators(data) == validators


def test_serialized_dicts_serialize_to_themselves() -> None:
    data = [{"name": "ensure_port", "args": [443]}]
    assert serialize_validators(data) == data


def test_lambdas_cannot_be_serialized() -> None:
    with pytest.raises(ImproperlyConfigured, match="lambda or a local function"):
        serialize_validators([lambda url: None])


def test_local_functions_cannot_be_serialized() -> None:
    def local(url: str) -> None:
        pass

    with pytest.raises(ImproperlyConfigured, match="module level"):
        serialize_validators([local])


def test_functions_from_main_cannot_be_serialized() -> None:
    def check(url: str) -> None:
        pass

    check.__module__ = "__main__"
    check.__qualname__ = "check"
    with pytest.raises(ImproperlyConfigured, match="__main__"):
        serialize_validators([check])


def test_custom_validator_classes_cannot_be_serialized() -> None:
    @dataclass(frozen=True, slots=True, repr=False)
    class OnlyEU(RecipientValidator):
        name: ClassVar[str] = "only_eu"

        def check(self, recipient: Recipient) -> None:
            pass

    validate_recipient("https://example.com/", [OnlyEU()])
    with pytest.raises(ImproperlyConfigured, match="not a built-in one"):
        serialize_validators([OnlyEU()])


def test_callable_objects_without_a_name_cannot_be_serialized() -> None:
    class Check:
        def __call__(self, url: str) -> None:
            pass

    with pytest.raises(ImproperlyConfigured, match="no importable name"):
        serialize_validators([Check()])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "allow_everything", "args": []}, "unknown recipient validator"),
        ({"args": []}, "unknown recipient validator None"),
        ({"name": "ensure_port", "args": 443}, "must be a list"),
        ({"name": "ensure_port", "args": [443], "extra": 1}, "unknown keys"),
        ({"name": "ensure_port", "args": [0]}, "from 1 to 65535"),
        ({"name": "block_internal_ips", "args": [1]}, "takes no arguments"),
        ({"name": "block_cidr_network", "args": ["nope"]}, "not a CIDR network"),
        ({"name": "callable"}, "module:qualname"),
        ({"name": "callable", "path": "no_such_module_x:check"}, "cannot import"),
        ({"name": "callable", "path": f"{__name__}:missing"}, "cannot import"),
        ({"name": "callable", "path": "os:system"}, "standard library"),
        ({"name": "callable", "path": "subprocess:getoutput"}, "standard library"),
        ({"name": "callable", "path": f"{__name__}:BLOCKED"}, "not a Python function"),
        ("ensure_port", "must be a dict"),
    ],
)
def test_bad_serialized_validators_are_improperly_configured(
    data: Any, message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        validator_from_dict(data)


def test_deserialize_validators_needs_a_list() -> None:
    one: Any = {"name": "ensure_port", "args": [443]}
    with pytest.raises(ImproperlyConfigured, match="must be a list"):
        deserialize_validators(one)
