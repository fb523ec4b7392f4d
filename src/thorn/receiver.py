"""Helpers for receivers of Thorn webhooks: check a request's signatures.

A Thorn request with a secret carries two signatures:

* ``Hook-HMAC``: base64 of HMAC(secret, body), with the subscriber's digest
  (sha256 unless configured otherwise).  It does not cover any timestamp.
* Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature``): HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``, so a
  replayed old message can be told apart.

Always verify the raw request body, before parsing it.  Header names are
matched ignoring case (pass e.g. Django's ``request.headers``, not
``request.META``).  Error messages say what failed, never the signatures or
the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Final, TypeAlias

from thorn.exceptions import ImproperlyConfigured, SignatureError
from thorn.signing import HmacSigner, standard_webhooks_key
from thorn.utils.hmac import sign

__all__ = [
    "HOOK_HMAC",
    "STANDARD_WEBHOOKS",
    "Secrets",
    "verify_hook_hmac",
    "verify_request",
    "verify_standard",
]

#: One secret, or several accepted at once while secrets are rotated.
Secrets: TypeAlias = str | bytes | Sequence[str | bytes]

#: The scheme names :func:`verify_request` reports.
HOOK_HMAC: Final = "Hook-HMAC"
STANDARD_WEBHOOKS: Final = "Standard Webhooks"

_DEFAULT_TOLERANCE: Final = 300


def _secret_list(secret: Secrets) -> list[str | bytes]:
    items = [secret] if isinstance(secret, (str, bytes)) else list(secret)
    if not items or not all(items):
        raise ImproperlyConfigured(
            "Verifying a webhook needs the subscriber's secret, and got an empty "
            "one: pass the secret the sender was configured with."
        )
    return items


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def verify_hook_hmac(
    body: bytes | str,
    header_value: str | None,
    secret: Secrets,
    *,
    digest: str = "sha256",
    signer: HmacSigner = sign,
) -> None:
    """Check the ``Hook-HMAC`` header value against ``body``.

    ``signer`` must be the sender's THORN_HMAC_SIGNER
    (:func:`thorn.utils.hmac.compat_sign` for Thorn 1.x defaults).  Raises
    :exc:`~thorn.exceptions.SignatureError` if the header is missing or
    matches none of the secrets.
    """
    secrets = _secret_list(secret)
    if header_value is None or not header_value.strip():
        raise SignatureError(
            "The Hook-HMAC header is missing or empty: the request is unsigned, "
            "or the subscriber has no secret."
        )
    try:
        received = header_value.strip().encode("ascii")
    except UnicodeEncodeError:
        received = b""
    message = _as_bytes(body)
    for candidate in secrets:
        expected = signer(digest, candidate, message)
        if hmac.compare_digest(_as_bytes(expected), received):
            return
    raise SignatureError(
        f"The Hook-HMAC signature does not match the body: check the secret and "
        f"the digest ({digest}), and verify the raw request body, not a "
        "re-encoded copy."
    )


def verify_standard(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: Secrets,
    *,
    tolerance: float = _DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check the Standard Webhooks headers against ``body``.

    ``webhook-timestamp`` must be within ``tolerance`` seconds of ``now``
    (the current Unix time by default), and one of the space-separated
    ``v1,<base64>`` entries of ``webhook-signature`` must match one of the
    secrets.  Secrets are used as :func:`thorn.signing.standard_webhooks_key`
    reads them (``whsec_``-prefixed base64, or the secret's own bytes).
    Raises :exc:`~thorn.exceptions.SignatureError` saying what failed.
    """
    secrets = _secret_list(secret)
    lowered = _lowered(headers)
    msg_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "").strip()
    signature = lowered.get("webhook-signature", "")
    missing = [
        name
        for name, value in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature.strip()),
        )
        if not value
    ]
    if missing:
        raise SignatureError(
            f"Missing or empty Standard Webhooks header(s): {', '.join(missing)}; "
            "the request is unsigned, or a proxy dropped them."
        )
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureError(
            "The webhook-timestamp header is not a Unix time in whole seconds."
        )
    current = time.time() if now is None else now
    age = current - int(timestamp)
    if age > tolerance:
        raise SignatureError(
            f"The webhook-timestamp is {int(age)} s old, more than the {tolerance} "
            "s allowed: this may be a replayed message, or a clock is wrong."
        )
    if -age > tolerance:
        raise SignatureError(
            f"The webhook-timestamp is {int(-age)} s in the future, more than the "
            f"{tolerance} s allowed: check the sender's and the receiver's clocks."
        )
    candidates: list[bytes] = []
    for entry in signature.split():
        version, comma, value = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            candidates.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not candidates:
        raise SignatureError(
            "The webhook-signature header holds no well-formed v1 signature "
            "(expected space-separated 'v1,<base64>' entries)."
        )
    content = f"{msg_id}.{timestamp}.".encode() + _as_bytes(body)
    for candidate in secrets:
        expected = hmac.digest(
            standard_webhooks_key(candidate), content, hashlib.sha256
        )
        for received in candidates:
            if hmac.compare_digest(expected, received):
                return
    raise SignatureError(
        f"None of the {len(candidates)} v1 signature(s) in webhook-signature "
        "matches: check the secret, and verify the raw request body, not a "
        "re-encoded copy."
    )


def verify_request(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: Secrets,
    *,
    digest: str = "sha256",
    tolerance: float = _DEFAULT_TOLERANCE,
    now: float | None = None,
    signer: HmacSigner = sign,
    require_standard: bool = False,
) -> str:
    """Verify every signature scheme present in ``headers``; say which.

    At least one of ``Hook-HMAC`` and ``webhook-signature`` must be present,
    and each present one must verify.  Returns the names of the verified
    schemes, e.g. ``"Hook-HMAC, Standard Webhooks"``.  With
    ``require_standard=True`` a request without the Standard Webhooks
    headers is refused: ``Hook-HMAC`` alone cannot stop a replay, as it
    covers no timestamp.
    """
    lowered = _lowered(headers)
    verified: list[str] = []
    if "hook-hmac" in lowered:
        verify_hook_hmac(
            body, lowered["hook-hmac"], secret, digest=digest, signer=signer
        )
        verified.append(HOOK_HMAC)
    if "webhook-signature" in lowered:
        verify_standard(body, lowered, secret, tolerance=tolerance, now=now)
        verified.append(STANDARD_WEBHOOKS)
    elif require_standard:
        raise SignatureError(
            "The webhook-signature header is missing, and require_standard=True "
            "refuses requests without Standard Webhooks signatures."
        )
    if not verified:
        raise SignatureError(
            "The request carries no signature: expected a Hook-HMAC or a "
            "webhook-signature header.  Refuse it, or give the subscriber a "
            "secret so that Thorn signs its requests."
        )
    return ", ".join(verified)
