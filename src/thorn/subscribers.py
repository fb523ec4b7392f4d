"""Subscribers: who receives an event, from settings, events, callbacks or models.

Event patterns are made of dot-separated words:

* a word matches itself;
* ``*`` as a word matches exactly one word (``*.created`` matches
  ``article.created`` but not ``blog.article.created``);
* ``*`` as the **last** word matches one or more words (``article.*``
  matches ``article.created`` and ``article.comment.added``), so a lone
  ``*`` matches every event.

Because of that shape, the patterns that can match a given event name can be
listed (:func:`pattern_candidates`), which lets a database find an event's
subscribers with an indexed ``IN`` query instead of reading every pattern.
"""

from __future__ import annotations

import uuid as _uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import product
from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = [
    "AbstractSubscriber",
    "Subscriber",
    "is_pattern",
    "iter_subscribers",
    "matches_pattern",
    "pattern_candidates",
    "user_ident",
    "validate_event_name",
    "validate_pattern",
]

WILDCARD = "*"
#: Names longer than this are matched, but no candidate list is made for
#: them (2**words grows fast); the database falls back to a pattern scan.
MAX_CANDIDATE_WORDS = 10

_STATIC_NAMESPACE = _uuid.UUID("6f1c3a54-58a3-4c5e-8f0e-2b1f1d0c9a11")


def _check_words(name: object, what: str) -> list[str]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, not {name!r}")
    if len(name) > 255:
        raise ValueError(f"{what} {name[:40]!r}... is longer than 255 characters")
    words = name.split(".")
    for word in words:
        if not word:
            raise ValueError(
                f"{what} {name!r} has an empty word: use dot-separated words "
                "such as 'article.created'"
            )
        if any(ch.isspace() or ord(ch) < 32 for ch in word):
            raise ValueError(f"{what} {name!r} contains whitespace")
    return words


def validate_event_name(name: str) -> str:
    """Return ``name`` if it is a valid event name (words, no wildcard)."""
    words = _check_words(name, "event name")
    if any(WILDCARD in word for word in words):
        raise ValueError(
            f"event name {name!r} contains '*': wildcards belong in "
            "subscription patterns, not in the names of events"
        )
    return name


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a valid subscription pattern."""
    words = _check_words(pattern, "event pattern")
    for word in words:
        if WILDCARD in word and word != WILDCARD:
            raise ValueError(
                f"event pattern {pattern!r}: '*' must stand for a whole word "
                "(like 'article.*' or '*.created'), not part of one"
            )
    return pattern


def is_pattern(name: str) -> bool:
    return WILDCARD in name


@lru_cache(maxsize=4096)
def _pattern_words(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


def matches_pattern(pattern: str, name: str) -> bool:
    """True if subscription ``pattern`` matches event ``name``."""
    if pattern == name:
        return True
    if WILDCARD not in pattern:
        return False
    pwords = _pattern_words(pattern)
    nwords = name.split(".")
    last = len(pwords) - 1
    if pwords[last] == WILDCARD:
        if len(nwords) < len(pwords):
            return False
    elif len(nwords) != len(pwords):
        return False
    return all(p in (WILDCARD, n) for p, n in zip(pwords, nwords, strict=False))


@lru_cache(maxsize=4096)
def pattern_candidates(name: str) -> tuple[str, ...]:
    """Every pattern that matches event ``name`` (the name itself first).

    For a name of n words there are ``2**n + 2**(n-1) - 1`` of them (11 for
    three words). Raises ValueError for names over
    ``MAX_CANDIDATE_WORDS`` words.
    """
    words = name.split(".")
    n = len(words)
    if n > MAX_CANDIDATE_WORDS:
        raise ValueError(f"{name!r} has more than {MAX_CANDIDATE_WORDS} words")
    out: list[str] = [name]
    seen = {name}
    # Same length: each word literal or '*'.
    for mask in product((False, True), repeat=n):
        cand = ".".join(WILDCARD if m else w for m, w in zip(mask, words, strict=True))
        if cand not in seen:
            seen.add(cand)
            out.append(cand)
    # Shorter: a trailing '*' absorbs words k..n.
    for k in range(1, n):
        for mask in product((False, True), repeat=k - 1):
            head = [WILDCARD if m else w for m, w in zip(mask, words, strict=False)]
            cand = ".".join([*head, WILDCARD])
            if cand not in seen:
                seen.add(cand)
                out.append(cand)
    return tuple(out)


def user_ident(user: Any) -> Any:
    """The identity of a user (or sender): its primary key if it has one."""
    if user is None:
        return None
    pk = getattr(user, "pk", None)
    if pk is not None:
        return pk
    return user


class AbstractSubscriber(ABC):
    """What every subscriber offers, stored in a database or not.

    Use ``isinstance(obj, AbstractSubscriber)`` to test for a subscriber;
    a model class that is not a subclass can be registered with
    :meth:`register`.
    """

    @property
    @abstractmethod
    def url(self) -> str:
        """Destination URL to dispatch this event."""

    @property
    @abstractmethod
    def event(self) -> str:
        """Event pattern this subscriber is subscribed to (e.g. ``article.*``)."""

    #: MIME type of the requests made to :attr:`url`.
    content_type: str
    #: HMAC secret key, of arbitrary length (None: requests are unsigned).
    hmac_secret: str | None
    #: HMAC digest type (e.g. ``"sha512"``), one of ``hashlib``'s.
    hmac_digest: str
    #: Unique identifier.
    uuid: Any
    #: User filter: when set, only events this user sends reach the subscriber.
    user: Any

    def user_ident(self) -> Any:
        """Return *user* identity (JSON-serializable, like a primary key)."""
        return user_ident(getattr(self, "user", None))

    def as_dict(self) -> dict[str, Any]:
        """Dictionary representation of the subscriber (plain JSON values).

        Missing attributes get :class:`Subscriber`'s defaults.
        """
        uuid = getattr(self, "uuid", None)
        return {
            "event": getattr(self, "event", WILDCARD),
            "url": getattr(self, "url", None),
            "content_type": getattr(self, "content_type", "application/json"),
            "hmac_secret": getattr(self, "hmac_secret", None),
            "hmac_digest": getattr(self, "hmac_digest", "sha256"),
            "uuid": None if uuid is None else str(uuid),
            "user": self.user_ident(),
        }

    @classmethod
    def from_dict(cls, *args: Any, **kwargs: Any) -> Any:
        """Create a subscriber from its dictionary form (same arguments as
        ``dict``): the keys are passed to the class as keyword arguments."""
        return cls(**dict(*args, **kwargs))

    def sign(self, message: bytes | str) -> str:
        """Sign message using HMAC with this subscriber's secret and digest
        (``sha256`` when it has none)."""
        from .utils.hmac import sign

        secret = getattr(self, "hmac_secret", None)
        if not secret:
            raise ValueError("this subscriber has no hmac_secret to sign with")
        return sign(getattr(self, "hmac_digest", None) or "sha256", secret, message)


@dataclass(frozen=True, slots=True)
class Subscriber(AbstractSubscriber):
    """A subscriber that lives in memory (settings, events, callbacks).

    ``user`` restricts it to events sent by that user (its identity: a
    primary key or the object). ``filters`` is an optional
    :class:`thorn.matchers.PayloadFilter` the payload must match.
    ``extra_secrets`` also sign Standard Webhooks during a secret rotation.
    """

    url: str
    event: str = WILDCARD
    content_type: str = "application/json"
    hmac_secret: str | None = None
    hmac_digest: str = "sha256"
    uuid: str = ""
    user: Any = None
    filters: Any = None
    extra_secrets: tuple[str, ...] = field(default=(), repr=False)
    active: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ImproperlyConfigured(f"a subscriber needs a URL, not {self.url!r}")
        validate_pattern(self.event)
        if self.hmac_secret is not None and not self.hmac_secret:
            raise ImproperlyConfigured(
                "hmac_secret is empty: give a secret, or None to send unsigned"
            )
        from .utils.hmac import get_digest

        get_digest(self.hmac_digest)  # an unknown digest fails here, not mid-send
        if not self.uuid:
            # Stable across processes, so Hook-Subscription means something.
            ident = f"{self.event} {self.url}"
            object.__setattr__(self, "uuid", str(_uuid.uuid5(_STATIC_NAMESPACE, ident)))

    def __repr__(self) -> str:
        from .transport.url import parse_url

        try:
            shown = parse_url(self.url).redacted()
        except ValueError:
            shown = "<invalid url>"
        return f"Subscriber(event={self.event!r}, url={shown!r})"

    def as_dict(self) -> dict[str, Any]:
        """Dictionary representation of Subscriber (plain JSON)."""
        out: dict[str, Any] = {
            "event": self.event,
            "url": self.url,
            "content_type": self.content_type,
            "hmac_secret": self.hmac_secret,
            "hmac_digest": self.hmac_digest,
            "uuid": self.uuid,
            "user": self.user_ident(),
        }
        if self.filters is not None:
            out["filters"] = self.filters.to_json()
        if self.extra_secrets:
            out["extra_secrets"] = list(self.extra_secrets)
        return out

    @classmethod
    def from_dict(cls, *args: Any, **kwargs: Any) -> Subscriber:
        """Create subscriber from dictionary representation (same args as dict)."""
        data = dict(*args, **kwargs)
        unknown = set(data) - _FIELDS
        if unknown:
            raise ImproperlyConfigured(
                f"unknown subscriber keys {sorted(unknown)}; allowed: {sorted(_FIELDS)}"
            )
        if "url" not in data:
            raise ImproperlyConfigured("a subscriber dict needs a 'url' key")
        filters = data.pop("filters", None)
        if filters is not None and not callable(filters):
            from .matchers import PayloadFilter

            filters = PayloadFilter.from_json(filters)
        extra = tuple(data.pop("extra_secrets", ()) or ())
        return cls(filters=filters, extra_secrets=extra, **data)

    def with_event(self, event: str) -> Subscriber:
        return replace(self, event=event, uuid="")


_FIELDS = {
    "event",
    "url",
    "content_type",
    "hmac_secret",
    "hmac_digest",
    "uuid",
    "user",
    "filters",
    "extra_secrets",
    "active",
}


def _coerce(
    item: Any, pattern: str, event: str, sender: Any, context: Mapping[str, Any]
) -> Iterator[Any]:
    if item is None:
        return
    if isinstance(item, str):
        yield Subscriber(url=item, event=pattern)
    elif isinstance(item, Mapping):
        data = dict(item)
        data.setdefault("event", pattern)
        yield Subscriber.from_dict(data)
    elif isinstance(item, AbstractSubscriber) or (
        hasattr(item, "url") and hasattr(item, "event") and not callable(item)
    ):
        yield item
    elif callable(item):
        for found in _as_iterable(item(event, sender=sender, **context)):
            yield from _coerce(found, pattern, event, sender, context)
    elif isinstance(item, Iterable):
        for found in item:
            yield from _coerce(found, pattern, event, sender, context)
    else:
        raise ImproperlyConfigured(
            f"cannot use {type(item).__name__} as a subscriber: give a URL, a dict, "
            "a subscriber object, or a callable returning those"
        )


def _as_iterable(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        return (value,)
    return value


def iter_subscribers(
    spec: Any,
    event: str,
    *,
    sender: Any = None,
    context: Mapping[str, Any] | None = None,
    pattern: str | None = None,
) -> Iterator[Any]:
    """Turn a subscriber spec (URL, dict, list, callable, generator) into subscribers.

    Subscribers made from plain URLs subscribe to ``pattern`` (default: the
    event's own name). A spec without callables is converted once and the
    result reused (specs are treated as immutable: build a new list rather
    than changing one in place).
    """
    if spec is None:
        return
    key = (id(spec), event, pattern)
    entry = _SPEC_CACHE.get(key)
    if entry is not None and entry[0] is spec:
        static = entry[1]
    else:
        static = None
        if not _is_dynamic(spec):
            static = tuple(_coerce(spec, pattern or event, event, None, {}))
        if len(_SPEC_CACHE) >= 4096:
            _SPEC_CACHE.clear()
        _SPEC_CACHE[key] = (spec, static)
    if static is not None:
        yield from static
    else:
        yield from _coerce(spec, pattern or event, event, sender, context or {})


_SPEC_CACHE: dict[tuple[int, str, str | None], tuple[Any, tuple[Any, ...] | None]] = {}


def _is_dynamic(spec: Any) -> bool:
    """True if converting ``spec`` calls something (so it cannot be cached)."""
    if isinstance(spec, (str, Mapping, AbstractSubscriber)):
        return False
    if callable(spec):
        return True
    if isinstance(spec, (list, tuple)):
        return any(_is_dynamic(item) for item in spec)
    return True  # generators and other iterables are consumed once


def static_subscribers(
    setting: Mapping[str, Any] | None,
    event: str,
    *,
    sender: Any = None,
    context: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Subscribers from a ``THORN_SUBSCRIBERS``-shaped mapping for ``event``.

    Keys are event names or patterns; values any subscriber spec.
    """
    if not setting:
        return
    if not isinstance(setting, Mapping):
        raise ImproperlyConfigured(
            "THORN_SUBSCRIBERS must be a mapping of event names to subscribers"
        )
    for key, spec in setting.items():
        if matches_pattern(key, event):
            yield from iter_subscribers(
                spec, event, sender=sender, context=context, pattern=key
            )


SubscriberSource = Callable[..., Iterable[Any]]
