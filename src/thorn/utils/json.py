"""JSON serialization utilities: fast payload encoding with orjson.

Besides ``str``, ``int``, ``float``, ``bool``, ``None``, ``dict`` (with str
keys), ``list`` and ``tuple``, payloads may hold:

* :class:`datetime.datetime`, :class:`datetime.date` and
  :class:`datetime.time`: ISO-8601 strings.  Microseconds are kept (and left
  out when zero, as :meth:`~datetime.datetime.isoformat` does); aware values
  keep their UTC offset (``+00:00``, never ``Z``), naive values stay naive.
  orjson writes offsets as ``±HH:MM``, so the seconds of the rare sub-minute
  offset (pre-1900 local mean time) are dropped.
* :class:`decimal.Decimal` and :class:`uuid.UUID`: strings, because a JSON
  number is read back as a float and loses precision.
* :class:`enum.Enum` members: their value.
* Django lazy strings (``django.utils.functional.Promise``): ``str(value)``,
  recognised without importing Django.

Anything else is refused with :exc:`~thorn.exceptions.UnencodablePayload`,
whose message names the type and where it sits (``payload['data']['when']``)
but never the value.  Sets, bytes and dataclass instances are refused too:
convert them first, or pass ``default=``.  NaN and infinities are refused
(JSON has no way to write them; orjson would silently turn them into null),
and so are integers outside the signed/unsigned 64-bit range.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from dataclasses import is_dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final, NoReturn
from uuid import UUID

import orjson

from thorn.exceptions import UnencodablePayload

__all__ = ["JsonEncoder", "dumps", "dumps_bytes"]

#: A ``default=`` hook: returns something encodable or raises TypeError.
Default = Callable[[Any], Any]

# orjson fails beyond this many nested containers.
_MAX_DEPTH: Final = 254
_INT_MIN: Final = -(2**63)
_INT_LIMIT: Final = 2**64
_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATACLASS
# orjson refuses aware datetime.time values; the retry formats every
# date and time in Python instead.
_RETRY_OPTIONS: Final = _OPTIONS | orjson.OPT_PASSTHROUGH_DATETIME
_PROMISE: Final = ("django.utils.functional", "Promise")


_lazy_types: dict[type, bool] = {}


def _is_lazy_type(cls: type) -> bool:
    found = _lazy_types.get(cls)
    if found is None:
        found = any((c.__module__, c.__name__) == _PROMISE for c in cls.__mro__)
        if len(_lazy_types) >= 1024:
            _lazy_types.clear()
        _lazy_types[cls] = found
    return found


class JsonEncoder(json.JSONEncoder):
    """Thorn custom JSON encoder for the standard library :mod:`json` module.

    Same as Django's ``DjangoJSONEncoder`` but preserves datetime microsecond
    information, and gives the same values :func:`dumps` gives for the types
    listed in this module's documentation: use it as
    ``json.dumps(payload, cls=JsonEncoder)``.
    """

    def default(self, o: Any) -> Any:
        """Convert the extra types Thorn supports, or raise TypeError."""
        if isinstance(o, (date, time)):
            return o.isoformat()
        if isinstance(o, (Decimal, UUID)) or _is_lazy_type(type(o)):
            return str(o)
        if isinstance(o, enum.Enum):
            return o.value
        return super().default(o)


def _default(o: Any) -> Any:
    # Only called for what orjson does not handle natively.
    if isinstance(o, (date, time)):  # Subclasses, aware times, the retry.
        return o.isoformat()
    if isinstance(o, (Decimal, UUID)):
        return str(o)
    if isinstance(o, float):  # Subclasses such as numpy.float64.
        return float(o)
    if isinstance(o, tuple):  # Named tuples and other subclasses.
        return list(o)
    if _is_lazy_type(type(o)):
        return str(o)
    raise TypeError


def _with_user_default(user: Default) -> Default:
    def fallback(o: Any) -> Any:
        try:
            return user(o)
        except TypeError:
            return _default(o)

    return fallback


def dumps_bytes(obj: Any, *, default: Default | None = None) -> bytes:
    """Serialize ``obj`` as compact UTF-8 JSON bytes, keys in the given order.

    ``default`` is called for values of other types; it returns something
    encodable or raises TypeError.  It is tried before Thorn's own
    conversions, so it can also change how e.g. Decimal is written.
    """
    fallback = _default if default is None else _with_user_default(default)
    try:
        out = orjson.dumps(obj, default=fallback, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        return _encode_carefully(obj, fallback, exc)
    # orjson writes NaN and infinities as null: look closer only if it could
    # have happened.
    if b"null" in out and not _plainly_finite(obj):
        _inspect(obj, fallback)
    return out


def dumps(obj: Any, *, default: Default | None = None) -> str:
    """Serialize object as json string (see :func:`dumps_bytes`)."""
    return dumps_bytes(obj, default=default).decode("utf-8")


def _encode_carefully(obj: Any, fallback: Default, exc: Exception) -> bytes:
    _inspect(obj, fallback)
    # Nothing is wrong with the values: what orjson refused must be an aware
    # datetime.time, which the retry formats in Python.
    try:
        return orjson.dumps(obj, default=fallback, option=_RETRY_OPTIONS)
    except orjson.JSONEncodeError:
        pass
    raise UnencodablePayload(
        f"Cannot encode the payload as JSON ({exc}): use only str, int, float, "
        "bool, None, list, dict and the types thorn.utils.json documents."
    ) from None


def _type_name(o: object) -> str:
    cls = type(o)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _hint(o: object) -> str:
    if isinstance(o, (set, frozenset)):
        return "convert it to a list (sorted() gives a stable order)"
    if isinstance(o, (bytes, bytearray, memoryview)):
        return "decode it to str, or base64-encode it"
    if is_dataclass(o):
        return "convert it with dataclasses.asdict()"
    return (
        "convert it to str, int, float, bool, None, list or dict first, pass "
        "default= to thorn.utils.json.dumps(), or configure a codec in "
        "THORN_CODECS"
    )


def _where(path: tuple[object, ...]) -> str:
    parts = ["payload"]
    for key in path:
        text = repr(key)
        parts.append(f"[{text if len(text) <= 40 else text[:37] + '...'}]")
    return "".join(parts)


def _fail(path: tuple[object, ...], what: str) -> NoReturn:
    raise UnencodablePayload(
        f"Cannot encode the payload as JSON: {_where(path)} {what}."
    )


_PLAIN_LEAVES: Final = frozenset(
    {str, int, bool, type(None), datetime, date, time, UUID, Decimal}
)


def _plainly_finite(obj: Any) -> bool:
    """Quickly tell that ``obj`` holds no NaN or infinity.

    False means "not sure" (a non-finite float, or a type that needs a
    closer look) and calls for :func:`_inspect`.  Only used on what orjson
    already encoded, so there are no cycles to worry about.
    """
    stack = [obj]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind in _PLAIN_LEAVES:
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind is dict:
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        else:
            return False
    return True


def _inspect(obj: Any, fallback: Default) -> None:
    """Raise UnencodablePayload for the first value orjson cannot write well."""
    _walk(obj, fallback, (), 0, set())


def _check_str(s: str, path: tuple[object, ...], role: str) -> None:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            _fail(
                path,
                f"{role} a lone surrogate, which UTF-8 cannot encode: fix how "
                "the text was decoded",
            )


def _walk(
    o: Any,
    fallback: Default,
    path: tuple[object, ...],
    depth: int,
    active: set[int],
) -> None:
    if isinstance(o, str):
        _check_str(o, path, "is a str holding")
        return
    if o is None or isinstance(o, bool):
        return
    if isinstance(o, int):
        if not _INT_MIN <= o < _INT_LIMIT:
            _fail(path, "is an int outside the 64-bit range; send it as a str")
        return
    if isinstance(o, float):
        if not math.isfinite(o):
            _fail(path, "is NaN or infinite, which JSON cannot represent; use None")
        return
    if isinstance(o, (dict, list)) or type(o) is tuple:
        if depth >= _MAX_DEPTH:
            _fail(path, f"is nested more than {_MAX_DEPTH} containers deep")
        if id(o) in active:
            _fail(path, "contains itself (a circular reference)")
        active.add(id(o))
        if isinstance(o, dict):
            for key, value in o.items():
                if not isinstance(key, str):
                    _fail(
                        path,
                        f"has a key of type {_type_name(key)!r}: JSON object "
                        "keys must be str",
                    )
                _check_str(key, path, "has a key holding")
                _walk(value, fallback, (*path, key), depth + 1, active)
        else:
            for index, item in enumerate(o):
                _walk(item, fallback, (*path, index), depth + 1, active)
        active.discard(id(o))
        return
    if isinstance(o, (date, time, UUID)):
        return
    if isinstance(o, enum.Enum):
        _walk(o.value, fallback, path, depth + 1, active)
        return
    try:
        converted = fallback(o)
    except Exception:
        converted = o
    if converted is o or depth >= _MAX_DEPTH:
        _fail(
            path,
            f"is of type {_type_name(o)!r}, which JSON cannot represent: {_hint(o)}",
        )
    _walk(converted, fallback, path, depth + 1, active)
