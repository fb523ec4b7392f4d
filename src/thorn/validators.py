"""Recipient validators: decide whether a webhook URL may be delivered to."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)
from typing import Any, ClassVar, Self, TypeAlias

from thorn.exceptions import ImproperlyConfigured, RecipientRejected
from thorn.transport.resolver import IPAddress, Resolver, default_resolver
from thorn.transport.url import URL, parse_url

__all__ = [
    "BlockCIDRNetwork",
    "BlockInternalIPs",
    "EnsurePort",
    "EnsureProtocol",
    "Recipient",
    "RecipientValidator",
    "Validator",
    "avalidate_recipient",
    "block_cidr_network",
    "block_internal_ips",
    "default_validators",
    "deserialize_validators",
    "ensure_port",
    "ensure_protocol",
    "internal_address_reason",
    "serialize_validators",
    "validate_recipient",
    "validator_from_dict",
]

Network: TypeAlias = IPv4Network | IPv6Network


class Recipient(str):
    """The URL being validated: a ``str`` equal to the URL text as given.

    Validators written for Thorn 1.x (``def check(url: str)``) keep working;
    new ones can use ``url`` (the parsed :class:`~thorn.transport.url.URL`)
    and ``addresses`` (what the host resolved to: empty when it has not been
    resolved, the address itself for an IP literal).
    """

    url: URL
    addresses: tuple[IPAddress, ...]

    def __new__(cls, url: URL | str, addresses: Iterable[IPAddress] = ()) -> Self:
        parsed = parse_url(url)
        self = super().__new__(cls, parsed.raw)
        self.url = parsed
        self.addresses = tuple(addresses)
        return self

    def __repr__(self) -> str:
        return f"Recipient({self.url.redacted()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.addresses))


#: Anything that validates a recipient: a built-in validator, or a callable
#: that takes the recipient (a ``str``) and raises to refuse it.
Validator: TypeAlias = Callable[[Recipient], object]


# -- Special-purpose addresses ----------------------------------------------
#
# Sources (checked 2025):
#   IANA IPv4 Special-Purpose Address Registry
#     https://www.iana.org/assignments/iana-ipv4-special-registry/
#   IANA IPv6 Special-Purpose Address Registry
#     https://www.iana.org/assignments/iana-ipv6-special-registry/
#   IANA IPv4 Multicast / IPv6 Multicast Address Space registries
#   IANA IPv6 Address Space registry (only 2000::/3 is global unicast)
#     https://www.iana.org/assignments/ipv6-address-space/
#
# The registries mark a few blocks "globally reachable": the PCP and TURN
# anycast addresses 192.0.0.9/32 and 192.0.0.10/32 (inside 192.0.0.0/24),
# AS112 (192.31.196.0/24, 192.175.48.0/24, 2001:4:112::/48,
# 2620:4f:8000::/48), AMT (192.52.193.0/24, 2001:3::/32), the anycast
# addresses in 2001:1::/48 and ORCHIDv2 / drone IDs in 2001:20::/27.  They are
# network infrastructure, never a webhook receiver, so they are refused too.
# The tables are written out rather than taken from ``ipaddress``'s
# ``is_global``/``is_private``, which miss several of these on Python 3.11.

_IPV4_SPECIAL: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(network), reason)
    for network, reason in (
        ("0.0.0.0/8", "'this network' address"),  # RFC 791, RFC 1122
        ("10.0.0.0/8", "private-use address"),  # RFC 1918
        ("100.64.0.0/10", "shared (carrier-grade NAT) address"),  # RFC 6598
        ("127.0.0.0/8", "loopback address"),  # RFC 1122
        ("169.254.0.0/16", "link-local address"),  # RFC 3927
        ("172.16.0.0/12", "private-use address"),  # RFC 1918
        ("192.0.0.0/24", "IETF protocol assignment address"),  # RFC 6890
        ("192.0.2.0/24", "documentation address (TEST-NET-1)"),  # RFC 5737
        ("192.31.196.0/24", "AS112 service address"),  # RFC 7535
        ("192.52.193.0/24", "AMT relay anycast address"),  # RFC 7450
        ("192.88.99.0/24", "6to4 relay anycast address"),  # RFC 7526
        ("192.168.0.0/16", "private-use address"),  # RFC 1918
        ("192.175.48.0/24", "AS112 service address"),  # RFC 7534
        ("198.18.0.0/15", "benchmarking address"),  # RFC 2544
        ("198.51.100.0/24", "documentation address (TEST-NET-2)"),  # RFC 5737
        ("203.0.113.0/24", "documentation address (TEST-NET-3)"),  # RFC 5737
        ("224.0.0.0/4", "multicast address"),  # RFC 5771
        ("255.255.255.255/32", "limited broadcast address"),  # RFC 919
        ("240.0.0.0/4", "reserved address"),  # RFC 1112
    )
)


def _low32(address: IPv6Address) -> IPv4Address:
    return IPv4Address(int(address) & 0xFFFFFFFF)


def _sixtofour(address: IPv6Address) -> IPv4Address:
    return IPv4Address((int(address) >> 80) & 0xFFFFFFFF)


def _teredo_client(address: IPv6Address) -> IPv4Address:
    return IPv4Address(~int(address) & 0xFFFFFFFF)


_IPV4_COMPATIBLE_REASON = (
    "IPv4-compatible address (deprecated by RFC 4291 section 2.5.5.1, never "
    "a webhook receiver; write the IPv4 address itself)"
)


# (network, reason, embedded IPv4 extractor or None).  The first match wins:
# a plain entry refuses; an entry with an extractor refuses only when the
# IPv4 address inside is refused (and allows it when that one is global).
_IPV6_SPECIAL: tuple[
    tuple[IPv6Network, str, Callable[[IPv6Address], IPv4Address] | None], ...
] = tuple(
    (IPv6Network(network), reason, extract)
    for network, reason, extract in (
        ("::/128", "unspecified address", None),  # RFC 4291
        ("::1/128", "loopback address", None),  # RFC 4291
        ("::ffff:0:0/96", "IPv4-mapped address", _low32),  # RFC 4291
        ("::/96", _IPV4_COMPATIBLE_REASON, None),  # RFC 4291 (deprecated)
        ("64:ff9b::/96", "NAT64 address", _low32),  # RFC 6052
        ("64:ff9b:1::/48", "local-use NAT64 address", None),  # RFC 8215
        ("100::/64", "discard-only address", None),  # RFC 6666
        ("2001::/32", "Teredo address", None),  # RFC 4380
        ("2001:2::/48", "benchmarking address", None),  # RFC 5180
        ("2001:10::/28", "ORCHID address", None),  # RFC 4843 (deprecated)
        ("2001:20::/28", "ORCHIDv2 address", None),  # RFC 7343
        ("2001::/23", "IETF protocol assignment address", None),  # RFC 2928
        ("2001:db8::/32", "documentation address", None),  # RFC 3849
        ("2002::/16", "6to4 address", _sixtofour),  # RFC 3056
        ("2620:4f:8000::/48", "AS112 service address", None),  # RFC 7534
        ("3fff::/20", "documentation address", None),  # RFC 9637
        ("5f00::/16", "segment routing (SRv6 SID) address", None),  # RFC 9602
        ("fc00::/7", "unique local address", None),  # RFC 4193
        ("fe80::/10", "link-local address", None),  # RFC 4291
        ("fec0::/10", "site-local address", None),  # RFC 3879 (deprecated)
        ("ff00::/8", "multicast address", None),  # RFC 4291
    )
)

_IPV6_GLOBAL_UNICAST = IPv6Network("2000::/3")

# IPv6 forms whose traffic really goes to an IPv4 address, and how to read
# it.  block_cidr_network() looks inside every one of them; the table above
# judges mapped, NAT64 and 6to4 addresses by the IPv4 address and refuses
# IPv4-compatible and Teredo ones outright.  The local-use NAT64 prefix
# 64:ff9b:1::/48 is not here: where the IPv4 address sits is the operator's
# choice (RFC 8215), so it cannot be read (block_internal_ips refuses it).
_Extract: TypeAlias = Callable[[IPv6Address], IPv4Address]
_IPV4_CARRIERS: tuple[tuple[IPv6Network, _Extract], ...] = (
    (IPv6Network("::ffff:0:0/96"), _low32),  # IPv4-mapped, RFC 4291
    (IPv6Network("::/96"), _low32),  # IPv4-compatible, RFC 4291 (deprecated)
    (IPv6Network("64:ff9b::/96"), _low32),  # NAT64 well-known prefix, RFC 6052
    (IPv6Network("2002::/16"), _sixtofour),  # 6to4, RFC 3056
    (IPv6Network("2001::/32"), _teredo_client),  # Teredo client, RFC 4380
)
# In ::/96 but IPv6's own unspecified and loopback addresses, not IPv4 ones.
_NOT_IPV4_COMPATIBLE = frozenset({IPv6Address("::"), IPv6Address("::1")})


def internal_address_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not globally routable, or None when it is."""
    if isinstance(address, IPv4Address):
        for network4, reason in _IPV4_SPECIAL:
            if address in network4:
                return reason
        return None
    for network6, reason, extract in _IPV6_SPECIAL:
        if address in network6:
            if extract is None:
                return reason
            inner = extract(address)
            inner_reason = internal_address_reason(inner)
            if inner_reason is None:
                return None
            return f"{reason} of {inner}, a {inner_reason}"
    if address not in _IPV6_GLOBAL_UNICAST:
        return "address outside the global unicast range 2000::/3"
    return None


def _embedded_ipv4(address: IPv6Address) -> list[IPv4Address]:
    """IPv4 addresses that traffic to ``address`` really goes to."""
    if address in _NOT_IPV4_COMPATIBLE:
        return []
    return [
        extract(address) for network, extract in _IPV4_CARRIERS if address in network
    ]


# -- Validators -----------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class RecipientValidator:
    """Base class of the built-in validators.

    A validator is called with a :class:`Recipient` and raises
    :class:`~thorn.exceptions.RecipientRejected` to refuse it.  It is a small
    immutable, hashable value that turns into plain JSON with :meth:`to_dict`
    and back with :func:`validator_from_dict`.
    """

    #: The factory name, as used in settings and in the JSON form.
    name: ClassVar[str] = ""
    #: Whether the validator looks at the addresses the host resolves to.
    needs_addresses: ClassVar[bool] = False

    @property
    def args(self) -> tuple[Any, ...]:
        """The factory arguments, as JSON values."""
        return ()

    def __call__(self, recipient: Recipient | str) -> None:
        """Raise RecipientRejected if ``recipient`` may not be delivered to."""
        if not isinstance(recipient, Recipient):
            recipient = Recipient(recipient)
        self.check(recipient)

    def check(self, recipient: Recipient) -> None:
        """Raise RecipientRejected if ``recipient`` may not be delivered to."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"name": ..., "args": [...]}``."""
        return {"name": self.name, "args": list(self.args)}

    def refuse(self, recipient: Recipient, reason: str) -> RecipientRejected:
        """The exception refusing ``recipient`` (the message has no password)."""
        return RecipientRejected(
            f"refusing to deliver to {_describe(recipient)}: {reason} ({self.name})"
        )

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(map(repr, self.args))})"


@dataclass(frozen=True, slots=True, repr=False)
class BlockInternalIPs(RecipientValidator):
    """Refuse every address that is not globally routable."""

    name: ClassVar[str] = "block_internal_ips"
    needs_addresses: ClassVar[bool] = True

    def check(self, recipient: Recipient) -> None:
        for address in _addresses_of(recipient):
            reason = internal_address_reason(address)
            if reason is not None:
                raise self.refuse_address(recipient, address, reason)

    def refuse_address(
        self, recipient: Recipient, address: IPAddress, reason: str
    ) -> RecipientRejected:
        """The exception refusing one of the recipient's addresses."""
        where = _describe(recipient)
        if recipient.url.ip is None:
            where = f"{where} ({address})"
        return RecipientRejected(
            f"refusing to deliver to {where}: {reason} ({self.name}); "
            "webhooks may only go to public addresses"
        )


@dataclass(frozen=True, slots=True, repr=False)
class EnsureProtocol(RecipientValidator):
    """Refuse URLs whose scheme is not one of ``allowed``."""

    name: ClassVar[str] = "ensure_protocol"
    allowed: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", _normalize_schemes(self.allowed))

    @property
    def args(self) -> tuple[Any, ...]:
        return self.allowed

    def check(self, recipient: Recipient) -> None:
        scheme = recipient.url.scheme
        if scheme not in self.allowed:
            raise self.refuse(
                recipient,
                f"scheme {scheme!r} is not allowed; use {_one_of(self.allowed)}",
            )


@dataclass(frozen=True, slots=True, repr=False)
class EnsurePort(RecipientValidator):
    """Refuse URLs whose port is not one of ``allowed``."""

    name: ClassVar[str] = "ensure_port"
    allowed: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", _normalize_ports(self.allowed))

    @property
    def args(self) -> tuple[Any, ...]:
        return self.allowed

    def check(self, recipient: Recipient) -> None:
        url = recipient.url
        if url.port in self.allowed:
            return
        if url.port == 0:
            problem = f"the URL has no port and scheme {url.scheme!r} has no default"
        else:
            problem = f"port {url.port} is not allowed"
        raise self.refuse(recipient, f"{problem}; use {_one_of(self.allowed)}")


@dataclass(frozen=True, slots=True, repr=False)
class BlockCIDRNetwork(RecipientValidator):
    """Refuse addresses inside any of ``networks``.

    An IPv6 address that carries an IPv4 one (IPv4-mapped, IPv4-compatible,
    NAT64 ``64:ff9b::/96``, 6to4, Teredo) is also checked through that IPv4
    address, and an IPv4 address also as ``::ffff:a.b.c.d``.
    """

    name: ClassVar[str] = "block_cidr_network"
    needs_addresses: ClassVar[bool] = True
    networks: tuple[Network, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "networks", _normalize_networks(self.networks))

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(str(network) for network in self.networks)

    def check(self, recipient: Recipient) -> None:
        for address in _addresses_of(recipient):
            for network in self.networks:
                for candidate, subject in _candidates(address):
                    if candidate.version == network.version and candidate in network:
                        where = _describe(recipient)
                        if recipient.url.ip is None:
                            where = f"{where} ({address})"
                        raise RecipientRejected(
                            f"refusing to deliver to {where}: {subject} is in "
                            f"the blocked network {network} ({self.name})"
                        )


def _candidates(address: IPAddress) -> list[tuple[IPAddress, str]]:
    """``address`` and the other forms of it, each with how to name it."""
    if isinstance(address, IPv4Address):
        mapped = IPv6Address(f"::ffff:{address}")
        return [(address, str(address)), (mapped, f"{address} (as {mapped})")]
    return [
        (address, str(address)),
        *(
            (inner, f"{address} carries {inner}, which")
            for inner in _embedded_ipv4(address)
        ),
    ]


def block_internal_ips() -> BlockInternalIPs:
    """Block recipient URLs whose addresses are not globally routable.

    Loopback, private-use, link-local, shared (CGN), documentation,
    benchmarking, multicast, reserved and every other IANA special-purpose
    range is refused, for IPv4 and IPv6, including IPv4 addresses hidden in
    IPv6 ones (``::ffff:127.0.0.1``, ``64:ff9b::7f00:1``, ``2002:7f00:1::``).
    Deprecated IPv4-compatible addresses (``::a.b.c.d``) are all refused.
    Host names are resolved and every address must pass.  Private networks
    on public addresses need :func:`block_cidr_network`.
    """
    return BlockInternalIPs()


def ensure_protocol(*allowed: str) -> EnsureProtocol:
    """Only allow recipient URLs using one of the ``allowed`` schemes.

    >>> ensure_protocol('https', 'http://')
    ensure_protocol('https', 'http')
    """
    return EnsureProtocol(allowed=_normalize_schemes(allowed))


def ensure_port(*allowed: int | str) -> EnsurePort:
    """Only allow recipient URLs whose port (explicit or default) is allowed.

    >>> ensure_port(80, '443')
    ensure_port(80, 443)
    """
    return EnsurePort(allowed=_normalize_ports(allowed))


def block_cidr_network(*blocked_networks: str | Network) -> BlockCIDRNetwork:
    """Block recipient URLs whose addresses are in any of the CIDR networks.

    >>> block_cidr_network('192.168.0.0/24', '132.34.23.0/24')
    block_cidr_network('192.168.0.0/24', '132.34.23.0/24')
    """
    return BlockCIDRNetwork(networks=_normalize_networks(blocked_networks))


def default_validators() -> list[RecipientValidator]:
    """The default ``THORN_RECIPIENT_VALIDATORS``: public HTTP(S) on 80/443."""
    return [
        block_internal_ips(),
        ensure_protocol("http", "https"),
        ensure_port(80, 443),
    ]


# -- Running validators ---------------------------------------------------


def validate_recipient(
    url: str | URL,
    validators: Sequence[Validator | Mapping[str, Any]] | None = None,
    *,
    resolver: Resolver | None = None,
) -> Recipient:
    """Parse ``url`` once, resolve it if needed, and run ``validators`` on it.

    ``validators`` defaults to :func:`default_validators`; serialized
    validators (dicts) are accepted too.  The host is resolved only when a
    validator needs addresses (an IP literal needs no lookup).  Returns the
    :class:`Recipient`, whose ``url`` and ``addresses`` are what to connect to.

    Raises:
        InvalidURL: the URL cannot be parsed.
        RecipientRejected: a built-in validator refused it (user validators
            raise what they raise).
        ConnectionFailed: the host name could not be resolved.
    """
    parsed = parse_url(url)
    checks = _prepare(validators)
    addresses = _literal_addresses(parsed)
    if addresses is None:
        addresses = (
            (resolver or default_resolver()).resolve_sync(parsed.host, parsed.port)
            if _needs_addresses(checks)
            else ()
        )
    recipient = Recipient(parsed, addresses)
    for check in checks:
        result = check(recipient)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise ImproperlyConfigured(
                f"recipient validator {_name_of(check)} is asynchronous; "
                "use avalidate_recipient() or make it a plain function"
            )
    return recipient


async def avalidate_recipient(
    url: str | URL,
    validators: Sequence[Validator | Mapping[str, Any]] | None = None,
    *,
    resolver: Resolver | None = None,
) -> Recipient:
    """Like :func:`validate_recipient`, resolving without blocking the loop.

    A user validator may be a coroutine function: its result is awaited.
    """
    parsed = parse_url(url)
    checks = _prepare(validators)
    addresses = _literal_addresses(parsed)
    if addresses is None:
        addresses = (
            await (resolver or default_resolver()).resolve(parsed.host, parsed.port)
            if _needs_addresses(checks)
            else ()
        )
    recipient = Recipient(parsed, addresses)
    for check in checks:
        result = check(recipient)
        if inspect.isawaitable(result):
            await _await(result)
    return recipient


async def _await(result: Awaitable[object]) -> None:
    await result


# -- JSON form ------------------------------------------------------------

_FACTORIES: dict[str, Callable[..., RecipientValidator]] = {
    "block_internal_ips": block_internal_ips,
    "ensure_protocol": ensure_protocol,
    "ensure_port": ensure_port,
    "block_cidr_network": block_cidr_network,
}

_CALLABLE = "callable"


def validator_from_dict(data: Mapping[str, Any]) -> Validator:
    """Rebuild a validator from its JSON form (see :meth:`~RecipientValidator.to_dict`).

    ``{"name": "callable", "path": "module:qualname"}`` imports a user
    validator: only give this data that comes from a trusted source.
    """
    if not isinstance(data, Mapping):
        raise ImproperlyConfigured(
            f"a serialized recipient validator must be a dict, not "
            f"{type(data).__name__}; use serialize_validators() to make one"
        )
    name = data.get("name")
    if name == _CALLABLE:
        _check_keys(data, {"name", "path"})
        return _import_validator(data.get("path"))
    factory = _FACTORIES.get(name) if isinstance(name, str) else None
    if factory is None:
        known = ", ".join(sorted([*_FACTORIES, _CALLABLE]))
        raise ImproperlyConfigured(
            f"unknown recipient validator {name!r}; known names: {known}"
        )
    _check_keys(data, {"name", "args"})
    args = data.get("args", [])
    if not isinstance(args, list | tuple):
        raise ImproperlyConfigured(
            f"the args of recipient validator {name!r} must be a list, not "
            f"{type(args).__name__}"
        )
    if name == "block_internal_ips" and args:
        raise ImproperlyConfigured("block_internal_ips takes no arguments")
    return factory(*args)


def serialize_validators(
    validators: Iterable[Validator | Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The JSON form of a list of validators (built-in or importable callables)."""
    return [_serialize(validator) for validator in _as_list(validators)]


def deserialize_validators(data: Iterable[Mapping[str, Any]]) -> list[Validator]:
    """Rebuild the validators :func:`serialize_validators` described."""
    return [validator_from_dict(item) for item in _as_list(data)]


def _serialize(validator: Validator | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(validator, Mapping):
        validator = validator_from_dict(validator)
    if isinstance(validator, RecipientValidator):
        data = validator.to_dict()
        if validator.name not in _FACTORIES or validator_from_dict(data) != validator:
            raise ImproperlyConfigured(
                f"recipient validator {validator!r} is not a built-in one, so it "
                "cannot be serialized; call it from a module-level function and "
                "use that function instead"
            )
        return data
    if not callable(validator):
        raise ImproperlyConfigured(
            f"recipient validator {validator!r} is not callable; use one of "
            "thorn.validators or a function taking the URL"
        )
    return {"name": _CALLABLE, "path": _callable_path(validator)}


def _callable_path(func: Callable[..., object]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    hint = (
        "define it as a function at module level in an importable module, "
        "or use a built-in validator"
    )
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise ImproperlyConfigured(
            f"recipient validator {func!r} has no importable name, so it cannot "
            f"be serialized; {hint}"
        )
    if "<" in qualname:
        raise ImproperlyConfigured(
            f"recipient validator {module}.{qualname} is a lambda or a local "
            f"function, so it cannot be serialized; {hint}"
        )
    if module == "__main__":
        raise ImproperlyConfigured(
            f"recipient validator {qualname} is defined in __main__, which a "
            f"worker cannot import; {hint}"
        )
    path = f"{module}:{qualname}"
    loaded = _import_validator(path)
    if loaded is not func and loaded != func:
        raise ImproperlyConfigured(
            f"recipient validator {path} does not import back as the same "
            f"object, so it cannot be serialized; {hint}"
        )
    return path


def _import_validator(path: object) -> Validator:
    if not isinstance(path, str) or path.count(":") != 1:
        raise ImproperlyConfigured(
            f"a callable recipient validator needs a 'path' of the form "
            f"'module:qualname', not {path!r}"
        )
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ImproperlyConfigured(
            f"recipient validator path {path!r} must be 'module:qualname'"
        )
    if module_name.partition(".")[0] in sys.stdlib_module_names:
        raise ImproperlyConfigured(
            f"recipient validator path {path!r} names the standard library; "
            "refusing to import it as a validator (use a function of your own)"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for attribute in qualname.split("."):
            target = getattr(target, attribute)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(
            f"cannot import recipient validator {path!r}: {exc}"
        ) from exc
    if isinstance(target, RecipientValidator):
        return target
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        raise ImproperlyConfigured(
            f"recipient validator {path!r} is not a Python function; only "
            "functions and methods can be loaded by path"
        )
    validator: Validator = target
    return validator


# -- Helpers --------------------------------------------------------------


def _describe(recipient: Recipient) -> str:
    return recipient.url.host


def _one_of(allowed: Iterable[object]) -> str:
    items = [str(item) for item in allowed]
    return items[0] if len(items) == 1 else "one of " + ", ".join(items)


def _addresses_of(recipient: Recipient) -> tuple[IPAddress, ...]:
    """The recipient's addresses, resolving its host if nobody did yet.

    An IP literal host is always one of them, whatever ``addresses`` says.
    """
    url = recipient.url
    literal = url.ip
    if literal is not None:
        return (literal, *(a for a in recipient.addresses if a != literal))
    if recipient.addresses:
        return recipient.addresses
    return default_resolver().resolve_sync(url.host, url.port)


def _literal_addresses(url: URL) -> tuple[IPAddress, ...] | None:
    literal = url.ip
    return None if literal is None else (literal,)


def _needs_addresses(checks: Iterable[Validator]) -> bool:
    return any(getattr(check, "needs_addresses", False) is True for check in checks)


def _prepare(
    validators: Sequence[Validator | Mapping[str, Any]] | None,
) -> list[Validator]:
    if validators is None:
        return list(default_validators())
    checks: list[Validator] = []
    for validator in _as_list(validators):
        if isinstance(validator, Mapping):
            checks.append(validator_from_dict(validator))
        elif callable(validator):
            checks.append(validator)
        else:
            raise ImproperlyConfigured(
                f"recipient validator {validator!r} is not callable; use one of "
                "thorn.validators or a function taking the URL"
            )
    return checks


def _as_list(items: Iterable[Any]) -> list[Any]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ImproperlyConfigured(
            f"recipient validators must be a list, not {type(items).__name__}"
        )
    return list(items)


def _check_keys(data: Mapping[str, Any], allowed: set[str]) -> None:
    extra = set(data) - allowed
    if extra:
        raise ImproperlyConfigured(
            f"serialized recipient validator {data.get('name')!r} has unknown "
            f"keys {sorted(map(str, extra))}; allowed: {sorted(allowed)}"
        )


def _name_of(func: object) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _normalize_schemes(allowed: Iterable[object]) -> tuple[str, ...]:
    schemes: dict[str, None] = {}
    for item in allowed:
        if not isinstance(item, str):
            raise ImproperlyConfigured(
                f"ensure_protocol() takes scheme names such as 'https', not {item!r}"
            )
        scheme = item.strip().lower().removesuffix("//").removesuffix(":")
        if not _is_scheme(scheme):
            raise ImproperlyConfigured(
                f"ensure_protocol() got {item!r}, which is not a scheme; "
                "give names such as 'https' or 'http://'"
            )
        schemes.setdefault(scheme, None)
    if not schemes:
        raise ImproperlyConfigured(
            "ensure_protocol() needs at least one scheme, e.g. ensure_protocol('https')"
        )
    return tuple(schemes)


def _is_scheme(text: str) -> bool:
    return (
        bool(text)
        and text.isascii()
        and text[0].isalpha()
        and all(char.isalnum() or char in "+-." for char in text)
    )


def _normalize_ports(allowed: Iterable[object]) -> tuple[int, ...]:
    ports: dict[int, None] = {}
    for item in allowed:
        port: int | None = None
        if isinstance(item, int) and not isinstance(item, bool):
            port = item
        elif isinstance(item, str) and item.strip().isdecimal() and item.isascii():
            port = int(item.strip())
        if port is None or not 1 <= port <= 65535:
            raise ImproperlyConfigured(
                f"ensure_port() takes port numbers from 1 to 65535, not {item!r}"
            )
        ports.setdefault(port, None)
    if not ports:
        raise ImproperlyConfigured(
            "ensure_port() needs at least one port, e.g. ensure_port(443)"
        )
    return tuple(ports)


def _normalize_networks(networks: Iterable[object]) -> tuple[Network, ...]:
    found: dict[Network, None] = {}
    for item in networks:
        if isinstance(item, IPv4Network | IPv6Network):
            found.setdefault(item, None)
            continue
        if not isinstance(item, str):
            raise ImproperlyConfigured(
                f"block_cidr_network() takes CIDR strings such as "
                f"'192.168.0.0/16', not {item!r}"
            )
        try:
            network = ip_network(item.strip())
        except ValueError as exc:
            hint = ""
            try:
                hint = (
                    f"; did you mean {str(ip_network(item.strip(), strict=False))!r}?"
                )
            except ValueError:
                hint = "; write networks such as '192.168.0.0/16' or 'fd00::/8'"
            raise ImproperlyConfigured(
                f"block_cidr_network() got {item!r}, which is not a CIDR network "
                f"({exc}){hint}"
            ) from None
        found.setdefault(network, None)
    if not found:
        raise ImproperlyConfigured(
            "block_cidr_network() needs at least one network, e.g. "
            "block_cidr_network('192.168.0.0/16')"
        )
    return tuple(found)
