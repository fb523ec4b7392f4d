"""A send's subscriber query, compiled once per event and connection.

Every ``send()`` asks the database for the subscribers of its event. With
the ORM, building that query (``filter``, ``exclude``, ``defer``) and
compiling it to SQL cost about 0.9 ms a send on the benchmark's machine;
running it, about 0.1 ms. The query of an event and sender is the same
every time, so :class:`CompiledLookup` keeps its SQL, its parameters and
what turns rows into model instances, and :class:`LookupCache` keeps one
per (model, event, sender) on each database connection.

Only queries Thorn builds itself are kept: a subscriber model whose manager
has a ``get_queryset`` or ``matching`` of its own (a per-tenant filter, a
time window) may answer differently from one send to the next, so its
query is built by the ORM every time. The Django environment empties the
cache whenever a setting changes (``override_settings`` in tests).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from django.db import connections
from django.db.models import Model
from django.db.models.base import DEFERRED
from django.db.models.manager import BaseManager
from django.db.models.sql.compiler import SQLCompiler

from ..subscribers import MAX_CANDIDATE_WORDS
from .managers import SubscriberQuerySet

__all__ = ["CompiledLookup", "LookupCache", "compiles"]

#: Compiled queries kept per connection (then the oldest half is dropped).
MAX_LOOKUPS = 512

_MATCHING = SubscriberQuerySet.matching
_OURS = ("matching", "matching_event", "matching_user_or_all")


def compiles(manager: Any, event: str) -> bool:
    """Whether the query ``manager.matching(event, ...)`` may be kept.

    True for Thorn's own lookup on a manager that changes nothing of it,
    and an event name short enough for the indexed ``IN`` query (longer
    names read the database while the query is built).
    """
    if event.count(".") >= MAX_CANDIDATE_WORDS:
        return False
    cls = type(manager)
    if cls.get_queryset is not BaseManager.get_queryset:
        return False
    if getattr(getattr(cls, "matching", None), "__wrapped__", None) is not _MATCHING:
        return False
    queryset_class = getattr(manager, "_queryset_class", None)
    if not isinstance(queryset_class, type) or not issubclass(
        queryset_class, SubscriberQuerySet
    ):
        return False
    return all(
        getattr(queryset_class, name) is getattr(SubscriberQuerySet, name)
        for name in _OURS
    )


def _plain_from_db(model: Any) -> bool:
    """Whether ``model.from_db`` is Django's (not a custom loader)."""
    return getattr(model.from_db, "__func__", None) is Model.from_db.__func__  # type: ignore[attr-defined]


class CompiledLookup:
    """One subscriber query as SQL, and how to make instances of its rows.

    Made from a query set of plain model instances (no ``select_related``,
    annotations or extra columns); :meth:`of` returns None for any other.
    """

    __slots__ = ("all_names", "converters", "model", "names", "params", "sql", "widen")

    def __init__(
        self,
        model: Any,
        sql: str,
        params: tuple[Any, ...],
        names: list[str],
        converters: list[tuple[int, list[Any], Any]],
    ) -> None:
        self.model = model
        self.sql = sql
        self.params = params
        self.names = names  # the attnames of the columns, in order
        self.converters = converters  # (column, converters, expression)
        concrete = model._meta.concrete_fields
        self.all_names = [f.attname for f in concrete]
        self.widen: list[int] | None = None
        if len(names) != len(concrete) and _plain_from_db(model):
            column = {name: i for i, name in enumerate(names)}
            self.widen = [column.get(name, -1) for name in self.all_names]

    @classmethod
    def of(cls, queryset: Any) -> CompiledLookup | None:
        """Compile ``queryset`` (None: it cannot be kept; let the ORM run it)."""
        compiler: SQLCompiler = queryset.query.get_compiler(using=queryset.db)
        try:
            sql, params = compiler.as_sql()
        except Exception:  # EmptyResultSet and the like: the ORM knows best
            return None
        info = compiler.klass_info
        if (
            info is None
            or info.get("related_klass_infos")
            or compiler.annotation_col_map
            or info["model"] is not queryset.model
        ):
            return None
        select = compiler.select
        fields = info["select_fields"]
        if fields != list(range(len(fields))) or len(fields) != compiler.col_count:
            return None
        names = [select[i][0].target.attname for i in fields]
        converters = [
            (pos, list(convs), expression)
            for pos, (convs, expression) in compiler.get_converters(
                [s[0] for s in select[: compiler.col_count]]
            ).items()
        ]
        return cls(queryset.model, sql, tuple(params), names, converters)

    def fetch(self, alias: str) -> list[Any]:
        """Run the query on connection ``alias`` (in its current transaction)."""
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            rows = cursor.fetchall()
        build = self.model.from_db
        names = self.names
        converters = self.converters
        widen = self.widen
        if widen is not None:
            # Django's own from_db fills the deferred fields in by looking
            # each field up in ``names``; handing it full rows, made here
            # by index, skips that (a fifth of a 10,000-row fan-out's load).
            names = self.all_names
        found = []
        for row in rows:
            if converters:
                row = list(row)
                for pos, convs, expression in converters:
                    value = row[pos]
                    for convert in convs:
                        value = convert(value, expression, connection)
                    row[pos] = value
            if widen is not None:
                row = [DEFERRED if i < 0 else row[i] for i in widen]
            found.append(build(alias, names, row))
        return found


class LookupCache:
    """Compiled lookups, kept per database connection (one per thread)."""

    def __init__(self) -> None:
        self._by_connection: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop every compiled query (a setting changed)."""
        with self._lock:
            self._by_connection = weakref.WeakKeyDictionary()

    def compiled(self, alias: str) -> int:
        """How many queries are kept for this thread's connection ``alias``."""
        kept = self._by_connection.get(connections[alias])
        return sum(1 for lookup in (kept or {}).values() if lookup is not None)

    def subscribers(
        self, queryset_of: Any, model: Any, alias: str, event: str, ident: Any
    ) -> list[Any]:
        """The subscribers ``queryset_of()`` finds, compiled once per key.

        ``ident`` is the sender's identity (part of the query); the model,
        the event and it make the key.
        """
        connection = connections[alias]
        kept = self._by_connection.get(connection)
        if kept is None:
            with self._lock:
                kept = self._by_connection.setdefault(connection, {})
        try:
            key = (model, event, type(ident), ident)
            lookup = kept.get(key, False)
        except TypeError:  # an unhashable sender identity
            return list(queryset_of())
        if lookup is False:
            queryset = queryset_of()
            lookup = CompiledLookup.of(queryset)
            if len(kept) >= MAX_LOOKUPS:
                for old in list(kept)[: MAX_LOOKUPS // 2]:
                    kept.pop(old, None)
            kept[key] = lookup
            if lookup is None:
                return list(queryset)
        elif lookup is None:
            return list(queryset_of())
        found: list[Any] = lookup.fetch(alias)
        return found
