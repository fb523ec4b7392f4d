"""Webhook HTTP requests: one subscriber, one payload, one delivery id."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httptools

from .__about__ import __version__
from .exceptions import BadStatus, ConnectionFailed, DeliveryError, DeliveryTimeout
from .retry import RetryPolicy
from .transport.client import AsyncClient, Response, SyncClient
from .transport.url import URL, parse_url

__all__ = ["Request", "new_id"]

USER_AGENT = (
    f"Mozilla/5.0 (compatible; thorn/{__version__}; httptools/{httptools.__version__})"
)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
#: Headers Thorn sets itself; extra headers may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "hook-event",
        "hook-delivery",
        "hook-hmac",
        "hook-subscription",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    }
)


_id_lock = threading.Lock()
_last_ms = 0  # the millisecond of the last id this process made
_last_rand = 0  # its 74 random bits (rand_a and rand_b)
_RAND_BITS = 74


def _forget_last_id() -> None:
    """In a forked child: start afresh, not from the parent's last id."""
    global _last_ms, _last_rand
    _last_ms = _last_rand = 0


os.register_at_fork(after_in_child=_forget_last_id)


def new_id() -> str:
    """A new time-sortable unique id (UUID version 7, RFC 9562 section 5.7).

    The ids one process makes are strictly increasing, so they sort in the
    order they were made: within one millisecond (or if the clock goes
    back), an id's random bits are the previous id's plus a random step of
    up to 2**32 (RFC 9562 section 6.2, method 2), and a new millisecond
    starts from 73 random bits, leaving room to count up.
    """
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    fresh = int.from_bytes(os.urandom(10), "big")
    with _id_lock:
        if ms > _last_ms:
            rand = fresh >> 7  # 73 bits
        else:
            ms = _last_ms
            rand = _last_rand + 1 + (fresh & 0xFFFFFFFF)
            if rand >> _RAND_BITS:  # counted out: borrow the next millisecond
                ms += 1
                rand = fresh >> 7
        _last_ms, _last_rand = ms, rand
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_headers(headers: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Validate extra headers: tokens for names, no CR/LF/NUL in values."""
    if not headers:
        return []
    out = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise ValueError(f"invalid HTTP header name {name!r}")
        if name.lower() in RESERVED_HEADERS:
            raise ValueError(
                f"header {name!r} is set by Thorn and cannot be an extra header"
            )
        text = str(value)
        if _BAD_VALUE.search(text):
            raise ValueError(f"the value of header {name!r} contains CR, LF or NUL")
        out.append((name, text))
    return out


def webhook_headers(
    *,
    event: str,
    delivery_id: str,
    content_type: str,
    subscription: str,
    extra: Iterable[tuple[str, str]] = (),
    user_agent: str | None = None,
) -> list[tuple[str, str]]:
    """The headers every try of a delivery carries, before its signatures.

    Shared by :attr:`Request.default_headers` and the delivery engine: an
    extra ``User-Agent`` replaces Thorn's; extra headers are checked (token
    names, no CR/LF/NUL, none of the headers Thorn sets).
    """
    checked = check_headers(dict(extra))
    agents = [v for k, v in checked if k.lower() == "user-agent"]
    if agents:
        checked = [(k, v) for k, v in checked if k.lower() != "user-agent"]
    headers = [
        ("Hook-Event", event),
        ("Hook-Delivery", delivery_id),
        ("User-Agent", agents[-1] if agents else (user_agent or USER_AGENT)),
        ("Content-Type", content_type),
    ]
    if subscription:
        headers.append(("Hook-Subscription", subscription))
    headers.extend(checked)
    return headers


_local = threading.local()


def _thread_client() -> SyncClient:
    client: SyncClient | None = getattr(_local, "client", None)
    if client is None:
        client = _local.client = SyncClient()
    return client


class Request:
    """Webhook HTTP request.

    Args:
        event: Name of event.
        data: Event payload.
        sender: Sender of event (or None).
        subscriber: Subscriber to dispatch the request for.

    Keyword Arguments:
        on_success: called as ``on_success(request)`` when the request succeeds.
        on_timeout: called as ``on_timeout(request, exc)`` when it finally
            failed by timing out.
        on_error: called as ``on_error(request, exc)`` when it finally failed
            otherwise.
        headers: Additional HTTP headers to send with the request.
        user_agent: Set custom HTTP user agent.
        recipient_validators: validators run on the URL and its addresses.
        allow_keepalive: Allow reusing connections for this request.
        retry, retry_max, retry_delay: the retry policy (see
            :class:`thorn.retry.RetryPolicy`); ``policy`` gives it whole.
    """

    app: Any = None

    #: The session class (``requests.Session`` in Thorn 1.x): Thorn's own
    #: synchronous client, which keeps connections alive per origin.
    Session = SyncClient
    #: Exceptions considered a connection error.
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionFailed,)
    #: Exceptions considered a timeout error.
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (DeliveryTimeout,)

    def __init__(
        self,
        event: str,
        data: Any,
        sender: Any,
        subscriber: Any,
        id: str | None = None,
        on_success: Callable[..., Any] | None = None,
        on_error: Callable[..., Any] | None = None,
        on_timeout: Callable[..., Any] | None = None,
        timeout: float | None = None,
        retry: bool | None = None,
        retry_max: int | None = None,
        retry_delay: float | None = None,
        recipient_validators: Sequence[Callable[..., Any]] | None = None,
        allow_keepalive: bool = True,
        headers: Mapping[str, Any] | None = None,
        user_agent: str | None = None,
        *,
        body: bytes | None = None,
        policy: RetryPolicy | None = None,
        signer: Any = None,
        app: Any = None,
        retries: int = 0,
    ) -> None:
        self.event = event
        self.data = data
        self.sender = sender
        self.subscriber = subscriber
        self.id = id or new_id()
        self.on_success = on_success
        self.on_error = on_error
        self.on_timeout = on_timeout
        self.timeout = 3.0 if timeout is None else float(timeout)
        if policy is None:
            policy = RetryPolicy(
                retry=True if retry is None else retry,
                max_retries=10 if retry_max is None else retry_max,
                delay=60.0 if retry_delay is None else retry_delay,
            )
        self.policy = policy
        if recipient_validators is None:
            # A request made by hand gets the configured (or documented
            # default) validators; an explicit empty list means none.
            from .app import app_or_default

            recipient_validators = app_or_default(app or self.app).recipient_validators
        self.recipient_validators = tuple(recipient_validators)
        self.allow_keepalive = allow_keepalive
        self.extra_headers = check_headers(headers)
        agent = [v for k, v in self.extra_headers if k.lower() == "user-agent"]
        if agent:
            # An extra User-Agent replaces Thorn's rather than adding a second.
            self.extra_headers = [
                (k, v) for k, v in self.extra_headers if k.lower() != "user-agent"
            ]
        self.user_agent = agent[-1] if agent else (user_agent or USER_AGENT)
        self.body = body
        self.app = app or self.app
        self._signer = signer
        self.retries = retries
        self.response: Response | None = None
        self.exception: BaseException | None = None
        self._url: URL | None = None
        self._static_headers: list[tuple[str, str]] | None = None

    # -- manual's names ------------------------------------------------------

    @property
    def retry(self) -> bool:
        return self.policy.retry

    @property
    def retry_max(self) -> int:
        return self.policy.max_retries

    @property
    def retry_delay(self) -> float:
        return self.policy.delay

    @property
    def value(self) -> Any:
        return self.data

    @property
    def url(self) -> URL:
        """The subscriber's URL, parsed once (raises InvalidURL)."""
        if self._url is None:
            self._url = parse_url(self.subscriber.url)
        return self._url

    @property
    def urlident(self) -> tuple[str, str, int]:
        """Used to order HTTP requests by URL: (scheme, host, port)."""
        try:
            return self.url.origin
        except ValueError:
            return ("", "", 0)

    @property
    def content_type(self) -> str:
        return getattr(self.subscriber, "content_type", None) or "application/json"

    @property
    def subscription(self) -> str:
        return str(getattr(self.subscriber, "uuid", "") or "")

    def _get_signer(self) -> Any:
        if self._signer is None:
            from .signing import Signer

            hmac_sign = self.app.hmac_sign if self.app is not None else None
            self._signer = Signer(hmac_signer=hmac_sign) if hmac_sign else Signer()
        return self._signer

    @property
    def default_headers(self) -> list[tuple[str, str]]:
        """Headers that are the same on every attempt."""
        if self._static_headers is None:
            self._static_headers = webhook_headers(
                event=self.event,
                delivery_id=self.id,
                content_type=self.content_type,
                subscription=self.subscription,
                extra=self.extra_headers,
                user_agent=self.user_agent,
            )
        return self._static_headers

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header of the next attempt, signatures included."""
        return self.default_headers + self.signature_headers(self._encoded_body())

    def annotate_headers(self, extra_headers: Mapping[str, Any]) -> None:
        """Add more headers to this request."""
        self.extra_headers.extend(check_headers(extra_headers))
        self._static_headers = None

    def signature_headers(
        self, body: bytes, *, timestamp: int | None = None
    ) -> list[tuple[str, str]]:
        sub = self.subscriber
        signed = self._get_signer().headers(
            body=body,
            msg_id=self.id,
            timestamp=int(time.time()) if timestamp is None else timestamp,
            secret=getattr(sub, "hmac_secret", None) or None,
            digest=getattr(sub, "hmac_digest", None) or "sha256",
            extra_secrets=tuple(getattr(sub, "extra_secrets", ()) or ()),
        )
        return list(signed.items())

    def sign_request(self, subscriber: Any, data: bytes) -> str:
        """The ``Hook-HMAC`` value of ``data`` for ``subscriber``."""
        secret = getattr(subscriber, "hmac_secret", None)
        if not secret:
            return ""
        headers = self._get_signer().headers(
            body=data,
            msg_id=self.id,
            timestamp=0,
            secret=secret,
            digest=getattr(subscriber, "hmac_digest", None) or "sha256",
        )
        return str(headers.get("Hook-HMAC", ""))

    def _encoded_body(self) -> bytes:
        if self.body is None:
            from .codecs import Codecs

            self.body = Codecs().encode(self.data, self.content_type, max_size=None)
        return self.body

    # -- sending -------------------------------------------------------------

    async def attempt(self, client: AsyncClient) -> Response:
        """Make one HTTP attempt. Non-2xx answers raise :class:`BadStatus`."""
        body = self._encoded_body()
        headers = self.default_headers + self.signature_headers(body)
        response = await client.post(
            self.url,
            body,
            headers,
            timeout=self.timeout,
            validators=self.recipient_validators,
            keepalive=self.allow_keepalive,
        )
        self.response = response
        if not response.ok:
            raise BadStatus(
                f"{self.url.host_header} answered {response.status} "
                f"{response.reason}".rstrip(),
                request=self,
                response=response,
            )
        return response

    def handle_success(self) -> None:
        self.exception = None
        if self.on_success is not None:
            self.on_success(self)

    def handle_failure(self, exc: BaseException) -> None:
        self.exception = exc
        if isinstance(exc, DeliveryTimeout) and self.on_timeout is not None:
            self.on_timeout(self, exc)
        elif self.on_error is not None:
            self.on_error(self, exc)

    def handle_timeout_error(self, exc: BaseException, propagate: bool = False) -> None:
        self.handle_failure(exc)
        if propagate:
            raise exc

    def handle_connection_error(
        self, exc: BaseException, propagate: bool = False
    ) -> None:
        self.handle_failure(exc)
        if propagate:
            raise exc

    @contextlib.contextmanager
    def session_or_acquire(
        self, session: SyncClient | None = None
    ) -> Iterator[SyncClient]:
        """The ``session`` given, or this thread's shared client."""
        yield session or _thread_client()

    def to_safeurl(self, url: str | URL) -> str:
        """``url`` fit for logs: its password replaced by ``***``."""
        return parse_url(url).redacted()

    def validate_recipient(self, url: str | URL) -> None:
        """Run this request's recipient validators on ``url`` (resolving its
        host if a validator needs the addresses).

        Raises:
            InvalidURL, RecipientRejected: the URL is refused.
            ConnectionFailed: its host could not be resolved.
        """
        from .validators import validate_recipient

        validate_recipient(url, self.recipient_validators)

    def dispatch(
        self, session: SyncClient | None = None, propagate: bool = False
    ) -> Request:
        """Make one attempt now, in this thread, and call the callbacks."""
        client = session or _thread_client()
        try:
            client.run(self.attempt)
        except (DeliveryError, ValueError) as exc:
            self.handle_failure(exc)
            if propagate:
                raise
        else:
            self.handle_success()
        return self

    def post(self, session: SyncClient | None = None) -> Response:
        """One attempt; return the answer or raise."""
        client = session or _thread_client()
        return client.run(self.attempt)

    # -- JSON form -----------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Return dictionary representation of this request (plain JSON).

        Callbacks do not travel; the subscriber travels as its dict (with
        its secret, which is needed to sign: use a private broker).
        """
        from .validators import serialize_validators

        sub = self.subscriber
        # Built from attributes, not sub.as_dict(): payload filters were
        # applied when this request was made and do not travel.
        sub_dict = {
            "event": getattr(sub, "event", self.event),
            "url": sub.url,
            "content_type": self.content_type,
            "hmac_secret": getattr(sub, "hmac_secret", None) or None,
            "hmac_digest": getattr(sub, "hmac_digest", None) or "sha256",
            "uuid": self.subscription,
            "user": sub.user_ident() if hasattr(sub, "user_ident") else None,
        }
        extra = tuple(getattr(sub, "extra_secrets", ()) or ())
        if extra:
            sub_dict["extra_secrets"] = list(extra)
        return {
            "id": self.id,
            "event": self.event,
            "data": self.data,
            "sender": self.sender,
            "subscriber": sub_dict,
            "timeout": self.timeout,
            "policy": self.policy.to_dict(),
            "recipient_validators": serialize_validators(
                list(self.recipient_validators)
            ),
            "allow_keepalive": self.allow_keepalive,
            "headers": dict(self.extra_headers),
            "user_agent": self.user_agent,
            "retries": self.retries,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **kwargs: Any) -> Request:
        from .subscribers import Subscriber
        from .validators import deserialize_validators

        sub = dict(data["subscriber"])
        return cls(
            data["event"],
            data["data"],
            data.get("sender"),
            Subscriber.from_dict(sub),
            id=data.get("id"),
            timeout=data.get("timeout"),
            policy=RetryPolicy.from_dict(data["policy"])
            if data.get("policy")
            else None,
            recipient_validators=deserialize_validators(
                data.get("recipient_validators") or []
            ),
            allow_keepalive=data.get("allow_keepalive", True),
            headers=data.get("headers"),
            user_agent=data.get("user_agent"),
            retries=data.get("retries", 0),
            **kwargs,
        )

    def __repr__(self) -> str:
        try:
            where = self.url.redacted()
        except ValueError:
            where = "<invalid url>"
        return f"<Request {self.event} {self.id} -> {where}>"
