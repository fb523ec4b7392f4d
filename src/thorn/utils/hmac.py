"""HMAC message signing utilities behind the ``Hook-HMAC`` header."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import string
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, TypeAlias

from thorn.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from _hashlib import _HashObject

    #: A hashlib constructor such as :func:`hashlib.sha256`.
    DigestMethod: TypeAlias = Callable[[], _HashObject]

__all__ = [
    "DIGESTS",
    "SECRET_CHARS",
    "compat_sign",
    "get_digest",
    "hmac_digest",
    "random_secret",
    "sign",
    "verify",
]

#: The digest names :func:`get_digest` accepts, mapped to their constructors.
#: MD5 and the variable-length SHAKE functions are left out on purpose.
DIGESTS: Final[Mapping[str, DigestMethod]] = MappingProxyType(
    {
        "sha1": hashlib.sha1,
        "sha224": hashlib.sha224,
        "sha256": hashlib.sha256,
        "sha384": hashlib.sha384,
        "sha512": hashlib.sha512,
        "sha3_224": hashlib.sha3_224,
        "sha3_256": hashlib.sha3_256,
        "sha3_384": hashlib.sha3_384,
        "sha3_512": hashlib.sha3_512,
        "blake2b": hashlib.blake2b,
        "blake2s": hashlib.blake2s,
    }
)

#: Letters, digits and punctuation: the alphabet of :func:`random_secret`.
SECRET_CHARS: Final = string.ascii_letters + string.digits + string.punctuation

# RFC 2104: the key, padded to the block size, XOR-ed with 0x36 and 0x5C.
_INNER_PAD: Final = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD: Final = bytes(x ^ 0x5C for x in range(256))

# itsdangerous' default salt followed by its "django-concat" key derivation tag.
_COMPAT_KEY_PREFIX: Final = b"itsdangerous.Signer" + b"signer"


def get_digest(d: str) -> DigestMethod:
    """Get digest type by name (e.g. ``"sha512"``).

    Names are matched ignoring case and surrounding whitespace.  Raises
    :exc:`~thorn.exceptions.ImproperlyConfigured` for any name not in
    :data:`DIGESTS` (MD5 included).
    """
    try:
        return DIGESTS[d]
    except (KeyError, TypeError):
        pass
    if isinstance(d, str):
        found = DIGESTS.get(d.strip().lower())
        if found is not None:
            return found
    raise ImproperlyConfigured(
        f"Unsupported HMAC digest {d!r}: use one of {', '.join(DIGESTS)} "
        "(sha256 is the recommended choice)."
    )


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


@functools.lru_cache(maxsize=1024)
def _keyed(digest_method: str, key: str | bytes) -> tuple[_HashObject, _HashObject]:
    # The hash states after absorbing the padded key: copying them is much
    # cheaper than keying a new HMAC for every message.
    method = get_digest(digest_method)
    raw = _as_bytes(key)
    inner = method()
    if len(raw) > inner.block_size:
        raw = _hash(method, raw)
    raw = raw.ljust(inner.block_size, b"\0")
    outer = method()
    inner.update(raw.translate(_INNER_PAD))
    outer.update(raw.translate(_OUTER_PAD))
    return inner, outer


def _hash(method: DigestMethod, data: bytes) -> bytes:
    h = method()
    h.update(data)
    return h.digest()


def hmac_digest(digest_method: str, key: str | bytes, *parts: bytes) -> bytes:
    """Return the raw HMAC of the concatenated ``parts``.

    Equal to ``hmac.digest(key, b"".join(parts), digest_method)``, but the
    keyed hash states are cached per key, which halves the cost of signing
    short messages.  Text keys are encoded as UTF-8.
    """
    inner, outer = _keyed(digest_method, key)
    inner = inner.copy()
    for part in parts:
        inner.update(part)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()


def sign(digest_method: str, key: str | bytes, message: str | bytes) -> str:
    """Sign HMAC digest.

    Returns the standard base64 (with padding) of ``HMAC(key, message)``,
    exactly what a receiver computes with
    ``base64.b64encode(hmac.new(key, message, digestmod).digest())``.
    Text keys and messages are encoded as UTF-8.
    """
    mac = hmac_digest(digest_method, key, _as_bytes(message))
    return base64.b64encode(mac).decode("ascii")


def verify(
    digest: str | bytes | None,
    digest_method: str,
    key: str | bytes,
    message: str | bytes,
) -> bool:
    """Verify HMAC digest.

    ``digest`` is the received signature (e.g. the ``Hook-HMAC`` header);
    surrounding whitespace is ignored.  The comparison takes constant time,
    and a missing or malformed ``digest`` gives False instead of an error.
    """
    if digest is None:
        return False
    try:
        received = (
            digest.strip().encode("ascii")
            if isinstance(digest, str)
            else bytes(digest).strip()
        )
    except (UnicodeEncodeError, TypeError, ValueError):
        return False
    expected = sign(digest_method, key, message).encode("ascii")
    return hmac.compare_digest(expected, received)


@functools.lru_cache(maxsize=1024)
def _compat_key(digest_method: str, key: str | bytes) -> bytes:
    return _hash(get_digest(digest_method), _COMPAT_KEY_PREFIX + _as_bytes(key))


def compat_sign(digest_method: str, key: str | bytes, message: str | bytes) -> str:
    """Sign message using old itsdangerous signer.

    Gives what ``itsdangerous.Signer(key, digest_method=...).get_signature()``
    gives, without needing itsdangerous: the key is derived as
    ``digest("itsdangerous.Signer" + "signer" + key)`` and the HMAC is
    written in URL-safe base64 with the ``=`` padding removed.  Only meant
    for receivers written against Thorn 1.x; prefer :func:`sign`.
    """
    mac = hmac_digest(
        digest_method, _compat_key(digest_method, key), _as_bytes(message)
    )
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def random_secret(length: int = 64, chars: str = SECRET_CHARS) -> str:
    """Generate random secret (letters, digits, punctuation).

    Every character is drawn with :func:`secrets.choice`.
    """
    if length < 1:
        raise ValueError(f"random_secret() needs a length of 1 or more, not {length}.")
    if not chars:
        raise ValueError("random_secret() needs a non-empty chars alphabet.")
    return "".join([secrets.choice(chars) for _ in range(length)])
