"""Subscriber-side payload matchers: Any, Is, Startswith, Endswith, Contains, Like."""

from __future__ import annotations

import abc
import logging
import threading
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final, Protocol

import regex as _regex  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "MATCHERS",
    "MATCH_TIMEOUT",
    "MAX_PATTERN_LENGTH",
    "Any",
    "Contains",
    "Endswith",
    "Is",
    "Like",
    "Matcher",
    "PayloadFilter",
    "Startswith",
    "matcher_from_dict",
]

#: Longest regular expression :class:`Like` accepts, in characters.
MAX_PATTERN_LENGTH: Final = 1000
#: Seconds one :class:`Like` search may take; a search that runs longer
#: counts as no match (patterns come from subscribers: this stops ReDoS).
MATCH_TIMEOUT: Final = 0.01

_MISSING: Final = object()
_log = logging.getLogger(__name__)

# Patterns already logged as too slow, so each is logged once; bounded, as
# patterns come from subscribers (when full it starts again).
_TIMED_OUT: set[str] = set()
_TIMED_OUT_MAX: Final = 1024
_TIMED_OUT_LOCK: Final = threading.Lock()
_SHOWN_PATTERN_MAX: Final = 200
# A list index has at most this many digits (leading zeros aside); a longer
# one is past the end of any list.
_MAX_INDEX_DIGITS: Final = 18


class _Searcher(Protocol):
    """The part of a compiled ``regex`` pattern that :class:`Like` uses."""

    def search(self, string: str, *, timeout: float) -> object | None: ...


class Matcher(abc.ABC):
    """A test of one payload value; subclasses are frozen dataclasses."""

    __slots__ = ()

    #: The ``"match"`` name in the JSON form.
    name: ClassVar[str]
    #: Whether a field that is not in the payload at all matches.
    matches_missing: ClassVar[bool] = False

    @abc.abstractmethod
    def __call__(self, value: object) -> bool:
        """Does ``value`` match?"""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, object]:
        """Return the JSON form, e.g. ``{"match": "startswith", "value": "J"}``."""


@dataclass(frozen=True)
class Any(Matcher):
    """Matches anything, even a field that is not in the payload."""

    name: ClassVar[str] = "any"
    matches_missing: ClassVar[bool] = True

    def __call__(self, value: object) -> bool:
        return True

    def to_dict(self) -> dict[str, object]:
        return {"match": self.name}


@dataclass(frozen=True)
class Is(Matcher):
    """Strict equality: the value must be exactly the pattern.

    Types matter: ``True`` is not ``1`` and ``"1"`` is not ``1``.  Numbers
    compare by value (``1`` is ``1.0``, as JSON has one number type), lists
    and tuples are both sequences, and containers are compared strictly,
    element by element.
    """

    pattern: object
    name: ClassVar[str] = "is"

    def __call__(self, value: object) -> bool:
        return _strict_equal(value, self.pattern)

    def to_dict(self) -> dict[str, object]:
        return {"match": self.name, "value": self.pattern}


@dataclass(frozen=True)
class _StringMatcher(Matcher):
    pattern: str

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise ValueError(
                f"{type(self).__name__}() needs a str pattern, "
                f"not {type(self.pattern).__name__}: use Is() to match other values"
            )

    def to_dict(self) -> dict[str, object]:
        return {"match": self.name, "value": self.pattern}


@dataclass(frozen=True)
class Startswith(_StringMatcher):
    """Matches a string that starts with the pattern."""

    name: ClassVar[str] = "startswith"

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and value.startswith(self.pattern)


@dataclass(frozen=True)
class Endswith(_StringMatcher):
    """Matches a string that ends with the pattern."""

    name: ClassVar[str] = "endswith"

    def __call__(self, value: object) -> bool:
        return isinstance(value, str) and value.endswith(self.pattern)


@dataclass(frozen=True)
class Contains(_StringMatcher):
    """Matches a string containing the pattern, or a list with it as an item."""

    name: ClassVar[str] = "contains"

    def __call__(self, value: object) -> bool:
        if isinstance(value, str):
            return self.pattern in value
        if isinstance(value, list | tuple):
            return any(_strict_equal(item, self.pattern) for item in value)
        return False


@dataclass(frozen=True)
class Like(_StringMatcher):
    """Matches a string in which the regular expression is found (a search).

    The expression is compiled once with the ``regex`` package (the syntax
    of :mod:`re`); it may be at most :data:`MAX_PATTERN_LENGTH` characters
    long.  A search that takes more than :data:`MATCH_TIMEOUT` seconds
    counts as no match and is logged, once per pattern, at WARNING.
    """

    name: ClassVar[str] = "like"
    regex: _Searcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.pattern) > MAX_PATTERN_LENGTH:
            raise ValueError(
                f"Like() pattern is {len(self.pattern)} characters long: "
                f"shorten it to at most {MAX_PATTERN_LENGTH}"
            )
        try:
            compiled = _regex.compile(self.pattern)
        except _regex.error as exc:
            raise ValueError(
                f"Like() pattern {self.pattern!r} is not a valid regular "
                f"expression: {getattr(exc, 'msg', exc)} at position "
                f"{getattr(exc, 'pos', '?')}"
            ) from None
        object.__setattr__(self, "regex", compiled)

    def __call__(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return self.regex.search(value, timeout=MATCH_TIMEOUT) is not None
        except TimeoutError:
            _log_timeout(self.pattern)
            return False


def _log_timeout(pattern: str) -> None:
    """Warn that ``pattern`` ran out of time, the first time it does."""
    with _TIMED_OUT_LOCK:
        if pattern in _TIMED_OUT:
            return
        if len(_TIMED_OUT) >= _TIMED_OUT_MAX:
            _TIMED_OUT.clear()
        _TIMED_OUT.add(pattern)
    shown = repr(pattern)
    if len(shown) > _SHOWN_PATTERN_MAX:
        shown = shown[: _SHOWN_PATTERN_MAX - 3] + "..."
    _log.warning(
        "Like() pattern %s took more than %s s on a payload value, so the "
        "value was treated as not matching; simplify the pattern (nested or "
        "overlapping repetition such as (a|a)* or (a+)+ can take exponential "
        "time). Logged once per pattern.",
        shown,
        MATCH_TIMEOUT,
    )


#: Matcher classes by their JSON name.
MATCHERS: Final[Mapping[str, type[Matcher]]] = {
    cls.name: cls for cls in (Any, Is, Startswith, Endswith, Contains, Like)
}


def matcher_from_dict(data: Mapping[str, object]) -> Matcher:
    """Build a matcher from its JSON form: ``{"match": name, "value": pattern}``.

    ``"value"`` is left out for ``{"match": "any"}``.  Raises
    :exc:`ValueError` for unknown names and bad shapes.
    """
    if not isinstance(data, Mapping):
        raise ValueError(
            f'a matcher must be an object like {{"match": "is", "value": ...}}, '
            f"not {type(data).__name__}"
        )
    name = data.get("match")
    cls = MATCHERS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(
            f'unknown matcher "match": {name!r}: use one of {", ".join(MATCHERS)}'
        )
    allowed = {"match"} if cls is Any else {"match", "value"}
    extra = set(data) - allowed
    if extra:
        raise ValueError(
            f"unexpected keys {sorted(map(str, extra))} in {name!r} matcher: "
            f"only {sorted(allowed)} are allowed"
        )
    if cls is Any:
        return Any()
    if "value" not in data:
        raise ValueError(f'the {name!r} matcher needs a "value"')
    return cls(data["value"])  # type: ignore[call-arg]


def _strict_equal(a: object, b: object) -> bool:
    """Equality that does not mix up bools, numbers and strings."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(map(_strict_equal, a, b))
    return type(a) is type(b) and a == b


#: One name of a field path, with the list index it names (None if none).
_Step = tuple[str, int | None]


def _parse_path(path: str) -> tuple[_Step, ...]:
    """Split a dotted path once, reading list indexes ahead of matching."""
    return tuple((key, _list_index(key)) for key in path.split("."))


def _list_index(key: str) -> int | None:
    """The list index ``key`` names: ASCII digits only, so never ``"²"``."""
    if not (key.isascii() and key.isdecimal()):
        return None
    digits = key.lstrip("0") or "0"
    if len(digits) > _MAX_INDEX_DIGITS:
        return None  # past the end of any list
    return int(digits)


def _lookup(payload: object, path: tuple[_Step, ...]) -> object:
    """Read a parsed path from nested mappings (and lists, by index)."""
    value = payload
    for key, index in path:
        if isinstance(value, Mapping):
            value = value.get(key, _MISSING)
        elif index is not None and isinstance(value, list | tuple):
            value = value[index] if index < len(value) else _MISSING
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


class PayloadFilter(Mapping[str, Matcher]):
    """Dotted field paths mapped to matchers; matches when all of them do.

    ``PayloadFilter({"data.name": Startswith("J")})(payload)`` reads
    ``payload["data"]["name"]``; a name of ASCII digits indexes a list
    (``"data.tags.0"``), other names (``"²"``, ``"-1"``) never do.  A field
    missing from the payload only matches :class:`Any`.  An empty filter
    matches every payload.
    """

    __slots__ = ("_fields", "_paths")

    def __init__(self, fields: Mapping[str, Matcher] | None = None) -> None:
        self._fields: dict[str, Matcher] = {}
        self._paths: tuple[tuple[tuple[_Step, ...], Matcher], ...] = ()
        paths = []
        for path, matcher in (fields or {}).items():
            if not isinstance(path, str) or not path or not all(path.split(".")):
                raise ValueError(
                    f"invalid field path {path!r}: use dot-separated names "
                    f'such as "data.author.name"'
                )
            if not isinstance(matcher, Matcher):
                raise ValueError(
                    f"field {path!r}: expected a matcher such as Is(...) or "
                    f"Startswith(...), not {type(matcher).__name__}"
                )
            self._fields[path] = matcher
            paths.append((_parse_path(path), matcher))
        self._paths = tuple(paths)

    @classmethod
    def from_json(cls, data: object) -> PayloadFilter:
        """Build from the stored JSON form.

        ``{"data.name": {"match": "startswith", "value": "J"},
        "data.state": "PUBLISHED"}``: a bare (non-object) value means
        ``Is(value)``; an object must be a matcher.  Raises
        :exc:`ValueError` naming the field for anything else.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(
                f"a payload filter must be an object mapping field paths to "
                f"matchers, not {type(data).__name__}"
            )
        fields: dict[str, Matcher] = {}
        for path, spec in data.items():
            if not isinstance(path, str):
                raise ValueError(f"field path {path!r} must be a string")
            try:
                fields[path] = (
                    matcher_from_dict(spec) if isinstance(spec, Mapping) else Is(spec)
                )
            except ValueError as exc:
                raise ValueError(f"field {path!r}: {exc}") from None
        return cls(fields)

    @classmethod
    def from_kwargs(cls, **kwargs: object) -> PayloadFilter:
        """Build durian-style: ``from_kwargs(data__name=Startswith("J"))``.

        ``__`` separates the names of a path; a value that is not a matcher
        means ``Is(value)``.
        """
        return cls(
            {
                key.replace("__", "."): (
                    value if isinstance(value, Matcher) else Is(value)
                )
                for key, value in kwargs.items()
            }
        )

    def to_json(self) -> dict[str, object]:
        """Return the JSON form; ``Is`` of a non-object value is written bare."""
        out: dict[str, object] = {}
        for path, matcher in self._fields.items():
            if isinstance(matcher, Is) and not isinstance(matcher.pattern, Mapping):
                out[path] = matcher.pattern
            else:
                out[path] = matcher.to_dict()
        return out

    def __call__(self, payload: Mapping[str, typing.Any]) -> bool:
        """Does every field of ``payload`` match its matcher?"""
        for path, matcher in self._paths:
            value = _lookup(payload, path)
            if value is _MISSING:
                if not matcher.matches_missing:
                    return False
            elif not matcher(value):
                return False
        return True

    def __getitem__(self, path: str) -> Matcher:
        return self._fields[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields!r})"
