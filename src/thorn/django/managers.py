"""Django managers and query sets: find the subscribers of an event with an index.

An event name of n words can only be matched by a known, small set of
patterns (:func:`thorn.subscribers.pattern_candidates`: 11 for three
words), so ``matching_event`` asks for ``event IN (candidates)``, which the
``(event, active)`` index answers without reading the other subscribers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from ..subscribers import (
    MAX_CANDIDATE_WORDS,
    WILDCARD,
    matches_pattern,
    pattern_candidates,
    user_ident,
)

if TYPE_CHECKING:
    from .models import Subscriber  # noqa: F401  (named in a string below)

__all__ = ["SubscriberManager", "SubscriberQuerySet"]


class SubscriberQuerySet(models.QuerySet["Subscriber"]):
    """Query set of subscribers, with the lookups dispatching needs."""

    def matching(self, event: str, user: Any = None) -> SubscriberQuerySet:
        """Active subscribers of ``event`` that ``user`` (the sender) may reach.

        ``user`` is a user instance or its primary key; subscribers without
        a user match every sender. The rows come in no particular order:
        sorting them would cost time for nothing.
        """
        return (
            self.filter(active=True)
            .matching_event(event)
            .matching_user_or_all(user)
            .order_by()
        )

    def matching_event(self, event: str) -> SubscriberQuerySet:
        """Subscribers whose pattern matches ``event`` (``user.*``, ``*``...).

        Names of up to ``MAX_CANDIDATE_WORDS`` words (all real ones) become
        an indexed ``event IN (...)`` query. Longer names cannot list their
        candidates (there are ``2**words`` of them): then the exact name and
        every pattern containing ``*`` are read, matched in Python, and the
        result is a query on the primary keys found.
        """
        if event.count(".") < MAX_CANDIDATE_WORDS:
            return self.filter(event__in=pattern_candidates(event))
        found = [
            pk
            for pk, pattern in self.filter(
                Q(event=event) | Q(event__contains=WILDCARD)
            ).values_list("pk", "event")
            if matches_pattern(pattern, event)
        ]
        return self.filter(pk__in=found)

    def matching_user_or_all(self, user: Any) -> SubscriberQuerySet:
        """Subscribers without a user, and those of ``user`` (instance or pk).

        Written as "exclude those of other users" rather than ``user IS NULL
        OR user = ?``: SQLite without statistics would answer the latter
        from the user index, reading every subscriber without a user,
        instead of from the event index.
        """
        ident = user_ident(user)
        someone = Q(user__isnull=False)
        if ident is None:
            return self.exclude(someone)
        key_field = self.model._meta.get_field("user").target_field
        try:
            # Converting the value now means a sender that is no user id
            # (a string, another kind of object) matches only the
            # subscribers without a user, instead of failing the query.
            ident = key_field.to_python(ident)
        except (ValidationError, ValueError, TypeError):
            return self.exclude(someone)
        return self.exclude(someone & ~Q(user=ident))


#: The manager of :class:`~thorn.django.models.Subscriber` (``objects``):
#: a ``Manager`` with the methods of :class:`SubscriberQuerySet`.
SubscriberManager = models.Manager.from_queryset(
    SubscriberQuerySet, class_name="SubscriberManager"
)
SubscriberManager.__module__ = __name__
