"""Parse a webhook URL once, into the form that is both validated and connected to."""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import quote, unquote

import idna

from thorn.exceptions import ThornError

__all__ = ["DEFAULT_PORTS", "URL", "InvalidURL", "parse_url"]

#: Ports used when a URL names none.  Other schemes have no default (port 0).
DEFAULT_PORTS: Final = MappingProxyType({"http": 80, "https": 443})

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
_SCHEME_LIKE_RE: Final = re.compile(r"([^/?#]*)://")
_PORT_RE: Final = re.compile(r"[0-9]+")
_LABEL_RE: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?")
_IPV6_CHARS_RE: Final = re.compile(r"[0-9A-Fa-f:.]+")
_DECIMAL_RE: Final = re.compile(r"[0-9]+")
_OCTAL_RE: Final = re.compile(r"[0-7]+")
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]*")

# Characters kept as they are in a request target (RFC 3986 ``pchar`` and
# ``query``); everything else, and a ``%`` that does not start an escape, is
# percent-encoded as UTF-8.
_PATH_UNSAFE_RE: Final = re.compile(
    r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/%]"
)
_QUERY_UNSAFE_RE: Final = re.compile(
    r"%(?![0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]"
)
_USERINFO_SAFE: Final = "-._~!$&'()*+,;="

# Unicode categories refused anywhere in a URL: controls, format characters
# (zero-width and bidi controls), lone surrogates and every kind of space.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})

_MAX_HOSTNAME: Final = 253
_MAX_LABEL: Final = 63
_SHOWN_MAX: Final = 120
_REASON_MAX: Final = 100
_A_LABEL_PREFIX: Final = "xn--"
_EXAMPLE: Final = "https://example.com/webhook"


class InvalidURL(ThornError, ValueError):
    """The URL cannot be parsed (a syntax error, not a policy refusal)."""


@dataclass(frozen=True, slots=True, repr=False)
class URL:
    """A parsed, normalised absolute URL.

    Build one with :func:`parse_url`.  ``host`` is what gets resolved and
    connected to, ``target`` is what goes on the request line, so whatever
    validates this object validates the real destination.
    """

    scheme: str
    host: str
    port: int
    target: str = "/"
    username: str | None = None
    password: str | None = None
    raw: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", self._compose(mask=False))

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address when the host is an IP literal, else None."""
        return _ip_literal(self.host)

    @property
    def is_default_port(self) -> bool:
        """True when the port is the scheme's default, or there is no port (0)."""
        return self.port == 0 or self.port == DEFAULT_PORTS.get(self.scheme)

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: ``[v6]`` in brackets, ``:port`` if not default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.is_default_port else f"{host}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        """``(scheme, host, port)``: what a connection pool is keyed on."""
        return (self.scheme, self.host, self.port)

    def redacted(self) -> str:
        """The URL with its password replaced by ``***`` (safe for logs)."""
        return self._compose(mask=True)

    def _compose(self, *, mask: bool) -> str:
        userinfo = ""
        if self.username is not None or self.password is not None:
            userinfo = quote(self.username or "", safe=_USERINFO_SAFE)
            if self.password is not None:
                shown = "***" if mask else quote(self.password, safe=_USERINFO_SAFE)
                userinfo = f"{userinfo}:{shown}"
            userinfo += "@"
        return f"{self.scheme}://{userinfo}{self.host_header}{self.target}"

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"URL({self.redacted()!r})"


def parse_url(url: str | URL) -> URL:
    """Parse ``url`` into a :class:`URL` (a :class:`URL` is returned as is).

    Raises :class:`InvalidURL` when the text is not an absolute URL with a
    host that can be connected to.  Policy (which schemes, ports and
    addresses are allowed) is left to :mod:`thorn.validators`.
    """
    if isinstance(url, URL):
        return url
    # Subscriber URLs repeat on every send: parse each text once. URL is
    # immutable, so a cached result can be shared.
    cached = _CACHE.get(url) if isinstance(url, str) else None
    if cached is not None:
        return cached
    parsed = _parse(url)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[url] = parsed
    return parsed


@functools.lru_cache(maxsize=4096)
def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_CACHE: dict[str, URL] = {}
_CACHE_SIZE = 4096


def _parse(url: str) -> URL:
    if not isinstance(url, str):
        raise InvalidURL(
            f"a URL must be a str, not {type(url).__name__}; "
            f"give the full address, e.g. {_EXAMPLE!r}"
        )
    if not url:
        raise InvalidURL(f"the URL is empty; give the full address, e.g. {_EXAMPLE!r}")
    _check_characters(url)

    match = _SCHEME_RE.match(url)
    if match is None:
        if _SCHEME_LIKE_RE.match(url):
            raise InvalidURL(
                f"the scheme of {_show(url)} is not valid: it must start with a "
                "letter and hold only letters, digits, '+', '-' and '.'"
            )
        raise InvalidURL(
            f"{_show(url)} is not an absolute URL: it needs a scheme and '//', "
            f"e.g. {_EXAMPLE!r}"
        )
    scheme = match.group(1).lower()
    rest = url[match.end() :]

    end = len(rest)
    for delimiter in "/?#":
        index = rest.find(delimiter)
        if index != -1 and index < end:
            end = index
    authority, remainder = rest[:end], rest[end:]

    username: str | None = None
    password: str | None = None
    if authority.count("@") > 1:
        raise InvalidURL(
            f"{_show(url)} has more than one '@' before the path; "
            "percent-encode '@' in a user name or password as %40"
        )
    if "@" in authority:
        userinfo, _, hostport = authority.partition("@")
        username, password = _parse_userinfo(userinfo)
    else:
        hostport = authority

    host, port_text = _split_hostport(hostport, url)
    port = _parse_port(port_text, scheme, url)

    before_fragment = remainder.partition("#")[0]
    path, question, query = before_fragment.partition("?")
    target = _PATH_UNSAFE_RE.sub(_percent_encode, path) if path else "/"
    if question:
        target = f"{target}?{_QUERY_UNSAFE_RE.sub(_percent_encode, query)}"

    return URL(
        scheme=scheme,
        host=host,
        port=port,
        target=target,
        username=username,
        password=password,
        raw=url,
    )


def _check_characters(url: str) -> None:
    if url.isascii() and url.isprintable() and " " not in url and "\\" not in url:
        # Printable ASCII but the space: nothing refused (the loop below
        # costs a call per character; a webhook URL is nearly always this).
        return
    for position, char in enumerate(url):
        if char == "\\":
            raise InvalidURL(
                f"the URL has a backslash at position {position}; use '/' to "
                "separate path segments, or write it percent-encoded as %5C"
            )
        if char.isspace() or unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidURL(
                f"the URL has a whitespace or control character "
                f"(U+{ord(char):04X}) at position {position}; remove it, or "
                "percent-encode it if it belongs in the path or query"
            )


def _show(raw: str) -> str:
    """``raw`` for an error message: user info hidden, length capped, escaped."""
    separator = raw.find("://")
    start = separator + 3 if separator != -1 else 0
    at = raw.rfind("@")
    shown = f"{raw[:start]}***@{raw[at + 1 :]}" if at >= start else raw
    if len(shown) > _SHOWN_MAX:
        shown = shown[: _SHOWN_MAX - 3] + "..."
    return repr(shown)


def _parse_userinfo(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    name, colon, secret = userinfo.partition(":")
    try:
        username = unquote(name, errors="strict")
        password = unquote(secret, errors="strict") if colon else None
    except UnicodeDecodeError:
        raise InvalidURL(
            "the user name or password of the URL is not valid percent-encoded "
            "UTF-8; encode each byte outside ASCII as %XX"
        ) from None
    return username, password


def _split_hostport(hostport: str, url: str) -> tuple[str, str | None]:
    if not hostport:
        raise InvalidURL(
            f"{_show(url)} has no host; give one after '//', e.g. {_EXAMPLE!r}"
        )
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            raise InvalidURL(
                f"the IPv6 address in {_show(url)} has no closing ']'; "
                "write it as [2001:db8::1]"
            )
        after = hostport[close + 1 :]
        if after and not after.startswith(":"):
            raise InvalidURL(
                f"{_show(url)} has text after the IPv6 address; only ':port' "
                "may follow ']'"
            )
        port_text = after[1:] if after else None
        return _parse_ipv6(hostport[1:close], url), port_text
    if hostport.count(":") > 1:
        raise InvalidURL(
            f"the host of {_show(url)} has more than one ':'; write IPv6 "
            "addresses in brackets, e.g. http://[2001:db8::1]/"
        )
    name, colon, port_text = hostport.partition(":")
    return _parse_host(name, url), port_text if colon else None


def _parse_port(port_text: str | None, scheme: str, url: str) -> int:
    if not port_text:
        return DEFAULT_PORTS.get(scheme, 0)
    if not _PORT_RE.fullmatch(port_text) or len(port_text.lstrip("0")) > 5:
        raise InvalidURL(
            f"the port of {_show(url)} is not a number from 1 to 65535; "
            "give a port such as :443, or none for the scheme's default"
        )
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise InvalidURL(
            f"the port of {_show(url)} is {port}, outside 1 to 65535; "
            "give a port such as :443, or none for the scheme's default"
        )
    return port


def _parse_ipv6(text: str, url: str) -> str:
    if "%" in text:
        raise InvalidURL(
            f"the IPv6 host of {_show(url)} has a zone identifier (such as "
            "%25eth0); zone identifiers are not supported, use a global address"
        )
    if not text or not _IPV6_CHARS_RE.fullmatch(text):
        raise InvalidURL(
            f"the host of {_show(url)} is not an IPv6 address; write one in "
            "brackets, such as [2001:db8::1]"
        )
    try:
        return ipaddress.IPv6Address(text).compressed
    except ValueError:
        raise InvalidURL(
            f"the host of {_show(url)} is not a valid IPv6 address; write one in "
            "brackets, such as [2001:db8::1]"
        ) from None


#: Hosts already parsed (text as written: canonical form); many URLs share one.
_HOSTS: dict[str, str] = {}
_HOSTS_MAX = 4096


def _parse_host(text: str, url: str) -> str:
    host = _HOSTS.get(text)
    if host is None:
        host = _parse_new_host(text, url)
        if len(_HOSTS) >= _HOSTS_MAX:
            _HOSTS.clear()
        _HOSTS[text] = host
    return host


def _parse_new_host(text: str, url: str) -> str:
    if not text:
        raise InvalidURL(
            f"{_show(url)} has no host; give one after '//', e.g. {_EXAMPLE!r}"
        )
    if "%" in text:
        raise InvalidURL(
            f"the host of {_show(url)} is percent-encoded; write the host name "
            "as plain text"
        )
    labels = text.lower().split(".") if text.isascii() else _idna_labels(text, url)
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    if _ends_in_number(labels[-1]):
        return str(_parse_ipv4(labels, url))
    hostname = ".".join(labels)
    if len(hostname) > _MAX_HOSTNAME:
        raise InvalidURL(
            f"the host name of {_show(url)} is longer than {_MAX_HOSTNAME} "
            "characters; check the URL"
        )
    for label in labels:
        if len(label) > _MAX_LABEL:
            raise InvalidURL(
                f"the host name of {_show(url)} has a label longer than "
                f"{_MAX_LABEL} characters; check the URL"
            )
        if label.startswith(_A_LABEL_PREFIX):
            try:
                idna.ulabel(label)
            except UnicodeError as exc:
                raise _invalid_idna(url, exc) from None
        if not _LABEL_RE.fullmatch(label):
            raise InvalidURL(
                f"the host name of {_show(url)} is not valid: each label between "
                "dots must be non-empty, hold only letters, digits, '-' and '_', "
                "and not start or end with '-'"
            )
    return hostname


def _idna_labels(text: str, url: str) -> list[str]:
    """Labels of a non-ASCII host, as browsers make them (UTS 46, IDNA 2008).

    The whole host is mapped first (case, full-width forms, ideographic full
    stops), then each label that is still not ASCII becomes an ``xn--``
    A-label.  ASCII labels are left to the checks every host name gets, so
    an underscore stays allowed as it is in an ASCII host.
    """
    try:
        mapped = idna.uts46_remap(text, std3_rules=False)
        return [
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in mapped.split(".")
        ]
    except UnicodeError as exc:  # idna.IDNAError and Punycode errors
        raise _invalid_idna(url, exc) from None


def _invalid_idna(url: str, exc: UnicodeError) -> InvalidURL:
    reason = str(exc) or type(exc).__name__
    if len(reason) > _REASON_MAX:
        reason = reason[: _REASON_MAX - 3] + "..."
    return InvalidURL(
        f"the host of {_show(url)} is not a valid internationalised domain name "
        f"under IDNA 2008 ({reason}); fix that label, or write the host in the "
        "xn-- form its owner registered"
    )


def _ends_in_number(last: str) -> bool:
    """Whether a host's last label makes it an IPv4 address (WHATWG URL)."""
    if not last:
        return False
    if _DECIMAL_RE.fullmatch(last):
        return True
    return last[:2] == "0x" and bool(_HEX_RE.fullmatch(last[2:]))


def _parse_ipv4(parts: list[str], url: str) -> ipaddress.IPv4Address:
    """Parse a host the WHATWG way: ``127.1``, ``0x7f000001``, ``0177.0.0.1``."""
    if len(parts) > 4:
        raise InvalidURL(
            f"the host of {_show(url)} ends in a number, so it is read as an "
            "IPv4 address, but it has more than four parts; write it as a.b.c.d"
        )
    numbers = [_ipv4_number(part, url) for part in parts]
    last = numbers[-1]
    if any(number > 255 for number in numbers[:-1]) or last >= 256 ** (
        5 - len(numbers)
    ):
        raise InvalidURL(
            f"the IPv4 address in {_show(url)} is out of range; write it as "
            "a.b.c.d with each part from 0 to 255"
        )
    value = last
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str, url: str) -> int:
    if part[:2] == "0x":
        digits, base, pattern = part[2:], 16, _HEX_RE
    elif len(part) > 1 and part.startswith("0"):
        digits, base, pattern = part[1:], 8, _OCTAL_RE
    else:
        digits, base, pattern = part, 10, _DECIMAL_RE
    if part and not digits:
        return 0  # "0x" alone is zero, as in the WHATWG URL standard
    if not digits or not pattern.fullmatch(digits):
        raise InvalidURL(
            f"the host of {_show(url)} ends in a number, so it is read as an "
            "IPv4 address, but one of its parts is not a decimal, octal (0...) "
            "or hex (0x...) number; write the address as a.b.c.d, or fix the "
            "host name"
        )
    if len(digits.lstrip("0")) > 12:
        return 2**40  # larger than any IPv4 address in every base
    return int(digits, base)


def _percent_encode(match: re.Match[str]) -> str:
    return quote(match.group(0), safe="")
