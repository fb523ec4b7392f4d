"""Content-type codecs: how a payload becomes a request body (THORN_CODECS)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any, Final, TypeAlias
from urllib.parse import urlencode

import orjson

from thorn.exceptions import (
    ImproperlyConfigured,
    PayloadError,
    PayloadTooLarge,
    UnencodablePayload,
)
from thorn.utils.json import dumps_bytes

__all__ = [
    "DEFAULT_CODECS",
    "Codec",
    "Codecs",
    "encode_form",
    "encode_json",
    "normalize_content_type",
]

#: A codec turns a payload into a request body (text is sent as UTF-8).
Codec: TypeAlias = Callable[[Any], bytes | str]

#: What the per-send cache of :meth:`Codecs.encode_cached` holds.
EncodeCache: TypeAlias = MutableMapping[str, bytes | PayloadError]


def encode_json(data: Any) -> bytes:
    """Encode ``data`` as compact UTF-8 JSON (see :mod:`thorn.utils.json`)."""
    return dumps_bytes(data)


def _form_value(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    # Encode as the one-field object {"key": value} so that an error names
    # the field, then cut the value out of it.
    encoded = dumps_bytes({key: value})
    text = encoded[len(orjson.dumps(key)) + 2 : -1]
    if text.startswith(b'"'):  # A scalar written as a JSON string.
        unquoted: str = orjson.loads(text)
        return unquoted
    return text.decode("utf-8")


def encode_form(data: Any) -> bytes:
    """Encode a flat mapping as ``application/x-www-form-urlencoded``.

    Each key becomes one field.  Strings are sent as they are, None as an
    empty value, booleans as ``true``/``false``, numbers, dates, times,
    Decimals and UUIDs as JSON writes them (without quotes), and nested
    dicts, lists and tuples as JSON text in their field.  Keys must be
    str; anything else raises :exc:`~thorn.exceptions.UnencodablePayload`.
    """
    if not isinstance(data, Mapping):
        raise UnencodablePayload(
            f"Cannot encode a payload of type {type(data).__qualname__!r} as "
            "application/x-www-form-urlencoded: it needs a mapping of field "
            "names to values."
        )
    fields: list[tuple[str, str]] = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise UnencodablePayload(
                "Cannot encode the payload as application/x-www-form-urlencoded: "
                f"a field name is of type {type(key).__qualname__!r}; use str."
            )
        fields.append((key, _form_value(key, value)))
    return urlencode(fields).encode("ascii")


#: The built-in codecs, by content type.
DEFAULT_CODECS: Final[Mapping[str, Codec]] = MappingProxyType(
    {
        "application/json": encode_json,
        "application/x-www-form-urlencoded": encode_form,
    }
)


@functools.lru_cache(maxsize=64)
def normalize_content_type(content_type: str) -> str:
    """Return the media type of ``content_type``, lowercased, parameters dropped.

    ``"Application/JSON; charset=utf-8"`` gives ``"application/json"``.
    """
    return content_type.partition(";")[0].strip().lower()


def _import_codec(path: str, content_type: str) -> Codec:
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ImproperlyConfigured(
            f"THORN_CODECS[{content_type!r}] = {path!r} is not an import path: "
            "write 'package.module:function' or 'package.module.function'."
        )
    try:
        found: Any = importlib.import_module(module_name)
        for name in attribute.split("."):
            found = getattr(found, name)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(
            f"THORN_CODECS[{content_type!r}]: cannot import {path!r} "
            f"({type(exc).__name__}); check the module and function names."
        ) from exc
    if not callable(found):
        raise ImproperlyConfigured(
            f"THORN_CODECS[{content_type!r}]: {path!r} is not callable; name a "
            "function taking the payload and returning bytes or str."
        )
    codec: Codec = found
    return codec


class Codecs(Mapping[str, Codec]):
    """The codecs in use: :data:`DEFAULT_CODECS` changed by THORN_CODECS.

    ``overrides`` maps content types to codecs, given as callables or import
    paths (``"module:function"`` or ``"module.function"``, imported once,
    here).  A None value removes a built-in codec.  Content types are matched
    ignoring case and parameters such as ``; charset=utf-8``.
    """

    __slots__ = ("_codecs",)

    def __init__(
        self, overrides: Mapping[str, Codec | str | None] | None = None
    ) -> None:
        codecs = dict(DEFAULT_CODECS)
        for content_type, codec in (overrides or {}).items():
            key = normalize_content_type(content_type)
            if "/" not in key:
                raise ImproperlyConfigured(
                    f"THORN_CODECS key {content_type!r} is not a content type: "
                    "write it like 'application/json'."
                )
            if codec is None:
                codecs.pop(key, None)
            elif isinstance(codec, str):
                codecs[key] = _import_codec(codec, content_type)
            elif callable(codec):
                codecs[key] = codec
            else:
                raise ImproperlyConfigured(
                    f"THORN_CODECS[{content_type!r}] must be a function or an "
                    f"import path, not {type(codec).__qualname__!r}."
                )
        self._codecs: Mapping[str, Codec] = MappingProxyType(codecs)

    def __getitem__(self, content_type: str) -> Codec:
        return self._codecs[normalize_content_type(content_type)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._codecs)

    def __len__(self) -> int:
        return len(self._codecs)

    def __repr__(self) -> str:
        return f"<Codecs: {', '.join(self._codecs)}>"

    def encode(
        self, data: Any, content_type: str, *, max_size: int | None = None
    ) -> bytes:
        """Encode ``data`` for ``content_type``.

        Raises :exc:`~thorn.exceptions.UnencodablePayload` when no codec
        handles the content type or the codec refuses ``data``, and
        :exc:`~thorn.exceptions.PayloadTooLarge` when the body is longer
        than ``max_size`` bytes.
        """
        body = self._encode(data, normalize_content_type(content_type))
        _check_size(body, max_size)
        return body

    def encode_cached(
        self,
        data: Any,
        content_type: str,
        cache: EncodeCache,
        *,
        max_size: int | None = None,
    ) -> bytes:
        """Like :meth:`encode`, remembering the result in ``cache``.

        Use one fresh ``cache`` (a dict) per payload: the payload is then
        encoded once per content type however many subscribers receive it.
        Failures are remembered too.
        """
        key = normalize_content_type(content_type)
        cached = cache.get(key)
        if cached is None:
            try:
                cached = self._encode(data, key)
            except PayloadError as exc:
                cached = exc
            cache[key] = cached
        if isinstance(cached, PayloadError):
            raise cached.with_traceback(None)
        _check_size(cached, max_size)
        return cached

    def _encode(self, data: Any, key: str) -> bytes:
        codec = self._codecs.get(key)
        if codec is None:
            raise UnencodablePayload(
                f"No codec for content type {key!r}: this sender supports "
                f"{', '.join(self._codecs) or 'none'}; change the subscriber's "
                "content type or add a codec to THORN_CODECS."
            )
        try:
            body = codec(data)
        except PayloadError:
            raise
        except (TypeError, ValueError) as exc:
            raise UnencodablePayload(
                f"The {key} codec could not encode the payload "
                f"({type(exc).__name__}); check the payload's types."
            ) from exc
        if isinstance(body, str):
            return body.encode("utf-8")
        if isinstance(body, (bytearray, memoryview)):
            return bytes(body)
        if not isinstance(body, bytes):
            raise UnencodablePayload(
                f"The {key} codec returned {type(body).__qualname__!r}; a codec "
                "must return bytes or str."
            )
        return body


def _check_size(body: bytes, max_size: int | None) -> None:
    if max_size is not None and len(body) > max_size:
        raise PayloadTooLarge(
            f"The encoded payload is {len(body)} bytes, over the limit of "
            f"{max_size} bytes (THORN_PAYLOAD_MAX_SIZE): send less data, such "
            "as a reference the receiver can fetch."
        )
