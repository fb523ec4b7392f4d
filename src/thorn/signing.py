"""Request signing: the ``Hook-HMAC`` header and Standard Webhooks headers."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from thorn.exceptions import ImproperlyConfigured
from thorn.utils.hmac import hmac_digest, sign

__all__ = [
    "SECRET_PREFIX",
    "HmacSigner",
    "Signer",
    "sign_standard",
    "standard_webhooks_key",
    "standard_webhooks_secret",
]

#: Standard Webhooks secrets are written ``whsec_`` + base64(key bytes).
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (a prefix, not a secret)
_BYTES_PREFIX: Final = SECRET_PREFIX.encode("ascii")

#: The THORN_HMAC_SIGNER signature: ``(digest_method, secret, message) -> str``.
HmacSigner: TypeAlias = Callable[[str, str | bytes, bytes], str]


def standard_webhooks_key(secret: str | bytes) -> bytes:
    """Return the HMAC key a Standard Webhooks ``secret`` stands for.

    A secret starting with ``whsec_`` is base64 of the key bytes (missing
    ``=`` padding is tolerated); any other secret is used as is, text being
    encoded as UTF-8.  The result is cached per secret.
    """
    return _derive_key(secret)


@functools.lru_cache(maxsize=1024)
def _derive_key(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if raw.startswith(_BYTES_PREFIX):
        encoded = raw[len(_BYTES_PREFIX) :]
        try:
            key = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(
                "A webhook secret starts with 'whsec_' but the rest is not valid "
                "base64: fix the secret, or create one with "
                "standard_webhooks_secret()."
            ) from None
    else:
        key = raw
    if not key:
        raise ImproperlyConfigured(
            "A webhook secret is empty: give every subscriber a secret "
            "(thorn.utils.hmac.random_secret() makes one), or None to send "
            "unsigned requests."
        )
    return key


def standard_webhooks_secret(secret: str | bytes) -> str:
    """Return ``secret`` in the ``whsec_`` form Standard Webhooks libraries take.

    Give this to a receiver using e.g. ``standardwebhooks.webhooks.Webhook``:
    it names the same key :func:`sign_standard` signs with.
    """
    key = standard_webhooks_key(secret)
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def _standard_signature(secret: str | bytes, prefix: bytes, body: bytes) -> str:
    mac = hmac_digest("sha256", _derive_key(secret), prefix, body)
    return "v1," + base64.b64encode(mac).decode("ascii")


def sign_standard(
    msg_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[str | bytes],
) -> str:
    """Return the ``webhook-signature`` header value for one message.

    Each secret contributes one ``v1,<base64 HMAC-SHA256>`` entry, separated
    by spaces, so that during a key rotation the receiver can verify with
    either the old or the new secret.  The signed content is
    ``f"{msg_id}.{timestamp}."`` followed by the body bytes.
    """
    if not secrets:
        raise ValueError("sign_standard() needs at least one secret.")
    prefix = f"{msg_id}.{timestamp}.".encode()
    if len(secrets) == 1:
        return _standard_signature(secrets[0], prefix, body)
    return " ".join([_standard_signature(s, prefix, body) for s in secrets])


@dataclass(frozen=True, slots=True)
class Signer:
    """Makes the signature headers of one webhook request.

    ``hmac_signer`` is the THORN_HMAC_SIGNER function that fills the
    ``Hook-HMAC`` header (:func:`thorn.utils.hmac.sign` by default; use
    :func:`thorn.utils.hmac.compat_sign` for receivers of Thorn 1.x).
    """

    hmac_signer: HmacSigner = sign

    def headers(
        self,
        *,
        body: bytes,
        msg_id: str,
        timestamp: int,
        secret: str | None,
        digest: str,
        extra_secrets: Sequence[str] = (),
    ) -> dict[str, str]:
        """Return the signature headers for ``body``.

        Always present are ``webhook-id`` and ``webhook-timestamp`` (Unix
        seconds).  With a ``secret`` there are also ``Hook-HMAC`` (signed
        with the secret and ``digest`` by ``hmac_signer``) and
        ``webhook-signature`` (Standard Webhooks, HMAC-SHA256).
        ``extra_secrets`` add more ``webhook-signature`` entries while
        secrets are being rotated; ``Hook-HMAC`` holds only one signature and
        always uses ``secret``.
        """
        if not msg_id.isprintable():
            raise ValueError(
                "A webhook message id cannot hold control characters such as "
                "newlines: use letters, digits and punctuation."
            )
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
        if secret is None:
            return headers
        if not secret:
            raise ImproperlyConfigured(
                "A webhook secret is empty: give the subscriber a secret "
                "(thorn.utils.hmac.random_secret() makes one), or None to send "
                "unsigned requests."
            )
        hook_hmac: str | bytes = self.hmac_signer(digest, secret, body)
        if isinstance(hook_hmac, bytes):  # Tolerate 1.x-style signers.
            hook_hmac = hook_hmac.decode("ascii")
        headers["Hook-HMAC"] = hook_hmac
        if extra_secrets:
            headers["webhook-signature"] = sign_standard(
                msg_id, timestamp, body, (secret, *extra_secrets)
            )
        else:
            headers["webhook-signature"] = _standard_signature(
                secret, f"{msg_id}.{timestamp}.".encode(), body
            )
        return headers
