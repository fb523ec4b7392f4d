"""Thorn-related exceptions.

The tree::

    ThornError
    ├── ImproperlyConfigured          a THORN_* setting or argument is wrong
    ├── BufferNotEmpty                disabling a buffer that still holds events
    ├── PayloadError (ValueError)     the payload cannot become a request body
    │   ├── UnencodablePayload (TypeError)
    │   └── PayloadTooLarge
    ├── UnknownEvent (ValueError)     an event name no choice or pattern allows
    ├── SecurityError
    │   ├── RecipientRejected (ValueError)   a validator refused the URL
    │   └── SignatureError                   a signature did not verify
    └── DeliveryError                 one HTTP request failed (``.request``)
        ├── ConnectionFailed          refused, reset, DNS failure, TLS failure
        ├── DeliveryTimeout (TimeoutError)
        ├── ResponseTooLarge          the answer was over the read cap
        └── BadStatus                 the receiver answered with a non-2xx code

No message in this tree ever contains a secret, a signature or a request body:
URLs are shown without their credentials.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadStatus",
    "BufferNotEmpty",
    "ConnectionFailed",
    "DeliveryError",
    "DeliveryTimeout",
    "ImproperlyConfigured",
    "PayloadError",
    "PayloadTooLarge",
    "RecipientRejected",
    "ResponseTooLarge",
    "SecurityError",
    "SignatureError",
    "ThornError",
    "UnencodablePayload",
    "UnknownEvent",
]


class ThornError(Exception):
    """Base class for Thorn exceptions."""


class ImproperlyConfigured(ThornError):
    """Configuration invalid/missing."""


class BufferNotEmpty(ThornError):
    """Trying to close buffer that is not empty."""


class PayloadError(ThornError, ValueError):
    """The payload cannot be turned into a request body."""


class UnencodablePayload(PayloadError, TypeError):
    """The payload holds a value the codec cannot encode."""


class PayloadTooLarge(PayloadError):
    """The encoded payload is larger than ``THORN_PAYLOAD_MAX_SIZE``."""


class UnknownEvent(ThornError, ValueError):
    """The event name is not allowed (see ``THORN_EVENT_CHOICES``)."""


class SecurityError(ThornError):
    """Security related error."""


class RecipientRejected(SecurityError, ValueError):
    """A recipient validator refused the URL (or one of its addresses)."""


class SignatureError(SecurityError):
    """A webhook signature is missing, malformed, expired or wrong."""


class DeliveryError(ThornError):
    """One webhook request failed.

    ``request`` is the :class:`thorn.request.Request` that failed (or None),
    ``response`` the :class:`thorn.transport.Response` if one arrived.
    """

    def __init__(
        self,
        message: str,
        *,
        request: Any = None,
        response: Any = None,
    ) -> None:
        super().__init__(message)
        self.request = request
        self.response = response


class ConnectionFailed(DeliveryError):
    """The connection could not be made or was lost."""


class DeliveryTimeout(DeliveryError, TimeoutError):
    """The receiver did not answer within the timeout."""


class ResponseTooLarge(DeliveryError):
    """The receiver's answer was larger than the read cap."""


class BadStatus(DeliveryError):
    """The receiver answered with a status code that is not 2xx."""
