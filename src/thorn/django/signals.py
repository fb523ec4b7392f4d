"""Django signal dispatchers: model events on post_save, post_delete, m2m_changed.

``ModelEvent.dispatches_on_*()`` reaches these classes through
``app.env.signals``. What each sends:

* create: ``post_save`` with ``created=True``; change: ``post_save`` with
  ``created=False``; delete: ``post_delete``.
* raw saves (``loaddata``, ``save_base(raw=True)``) send nothing, nor do the
  many-to-many changes ``loaddata`` makes right after a raw save.
* events with ``now_*`` filters fetch the row as it is in the database in
  ``pre_save`` (one query per save of the model, shared by all its events);
  other events add no query.
* many-to-many: ``m2m_changed`` of the relation's ``through`` model, for the
  side of the relation the event was declared on. Changes made from the
  other side (``tag.articles.add(article)`` for ``Article.tags``) send
  nothing. ``add`` and ``remove`` send nothing when the set of primary keys
  Django reports is empty (``add`` of objects already there).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import signals as model_signals
from django.db.models.fields.related import (  # type: ignore[attr-defined]
    lazy_related_operation,
)

from ..exceptions import ImproperlyConfigured
from ..generic.signals import Receiver, signal_dispatcher

__all__ = [
    "dispatch_on_change",
    "dispatch_on_create",
    "dispatch_on_delete",
    "dispatch_on_m2m_add",
    "dispatch_on_m2m_change",
    "dispatch_on_m2m_clear",
    "dispatch_on_m2m_remove",
]

#: Instance attribute holding the previous version between pre_save and post_save.
PREVIOUS_ATTR = "_thorn_previous"
#: Instance attribute set by a raw save (m2m changes that follow are skipped).
RAW_ATTR = "_thorn_raw_save"


def _label(model: Any) -> str:
    return str(model._meta.label_lower)


def remember_previous(
    sender: Any,
    instance: Any,
    raw: bool = False,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    """``pre_save``: keep the row as the database has it, for ``now_*`` filters."""
    previous = None
    if not raw and instance.pk is not None:
        manager = type(instance)._base_manager
        try:
            previous = manager.using(using).filter(pk=instance.pk).first()
        except ObjectDoesNotExist:
            previous = None
    instance.__dict__[PREVIOUS_ATTR] = previous


def forget_previous(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_save`` (after every event's receiver): drop the previous version."""
    instance.__dict__.pop(PREVIOUS_ATTR, None)


def remember_raw(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """``pre_save``: mark raw saves, whose m2m changes (``loaddata``) send nothing."""
    if raw:
        instance.__dict__[RAW_ATTR] = True
    else:
        instance.__dict__.pop(RAW_ATTR, None)


class dispatch_on_create(signal_dispatcher):
    """Dispatch when a new instance is saved (``post_save``, ``created=True``)."""

    def setup_signals(self) -> Mapping[Any, Receiver]:
        return {model_signals.post_save: self.on_post_save}

    def on_post_save(self, sender: Any, instance: Any, **kwargs: Any) -> Any:
        return self(instance, sender=sender, **kwargs)

    def should_dispatch(
        self, instance: Any, *, raw: bool = False, created: bool = False, **kwargs: Any
    ) -> bool:
        return created and not raw


class dispatch_on_change(dispatch_on_create):
    """Dispatch when an existing instance is saved (``post_save``, not created).

    With ``use_transitions`` the previous version is read in ``pre_save``
    and given to the event as ``previous=``.
    """

    def connect(
        self, sender: Any = None, weak: bool = False, **kwargs: Any
    ) -> signal_dispatcher:
        if not self.use_transitions:
            return super().connect(sender, weak=weak, **kwargs)
        if sender is None:
            raise ImproperlyConfigured(
                "an event with now_* filters must be connected to one model"
            )
        uid = f"thorn.previous:{_label(sender)}"
        # One fetch per save, however many events of the model use it.
        model_signals.pre_save.connect(
            remember_previous, sender=sender, weak=False, dispatch_uid=uid
        )
        super().connect(sender, weak=weak, **kwargs)
        # Re-connected last, so every event's receiver saw the previous version.
        model_signals.post_save.disconnect(sender=sender, dispatch_uid=uid)
        model_signals.post_save.connect(
            forget_previous, sender=sender, weak=False, dispatch_uid=uid
        )
        return self

    def on_pre_save(
        self, instance: Any, sender: Any, raw: bool = False, **kwargs: Any
    ) -> None:
        """Read the previous version of ``instance`` (done once per save)."""
        remember_previous(sender, instance, raw=raw, **kwargs)

    def should_dispatch(
        self, instance: Any, *, created: bool = False, raw: bool = False, **kwargs: Any
    ) -> bool:
        return not created and not raw

    def context(self, instance: Any, **kwargs: Any) -> dict[str, Any]:
        if not self.use_transitions:
            return {}
        return {"previous": instance.__dict__.get(PREVIOUS_ATTR)}


class dispatch_on_delete(signal_dispatcher):
    """Dispatch when an instance is deleted (``post_delete``)."""

    def setup_signals(self) -> Mapping[Any, Receiver]:
        return {model_signals.post_delete: self.on_post_delete}

    def on_post_delete(self, sender: Any, instance: Any, **kwargs: Any) -> Any:
        return self(instance, sender=sender, **kwargs)


class dispatch_on_m2m_change(signal_dispatcher):
    """Dispatch on ``m2m_changed`` of ``related_field`` for some actions.

    The event gets ``related={"field": related_field, "pks": [...]}``.
    """

    #: The ``m2m_changed`` actions that send the event.
    actions: tuple[str, ...] = ()

    def __init__(
        self,
        fun: Callable[..., Any],
        related_field: str,
        use_transitions: bool = False,
        **kwargs: Any,
    ) -> None:
        self.related_field = related_field
        self.model: Any = None
        self.reverse = False
        super().__init__(fun, use_transitions=use_transitions, **kwargs)
        self.actions = self.setup_actions()

    def setup_actions(self) -> tuple[str, ...]:
        return ()

    def setup_signals(self) -> Mapping[Any, Receiver]:
        return {model_signals.m2m_changed: self.on_m2m_change}

    def prepare_sender(self, sender: Any) -> Any:
        """The relation's ``through`` model (or its lazy name)."""
        descriptor = getattr(sender, self.related_field, None)
        through = getattr(descriptor, "through", None)
        if through is None:
            raise ImproperlyConfigured(
                f"{getattr(sender, '__name__', sender)} has no many-to-many field "
                f"{self.related_field!r}: give dispatches_on_m2m_*() the name of "
                "one (a reverse relation exists only once the model declaring "
                "the field is defined)"
            )
        self.reverse = bool(getattr(descriptor, "reverse", False))
        return through

    def connect(
        self, sender: Any = None, weak: bool = False, **kwargs: Any
    ) -> signal_dispatcher:
        self.model = sender
        through = self.prepare_sender(sender)
        model_signals.pre_save.connect(
            remember_raw,
            sender=sender,
            weak=False,
            dispatch_uid=f"thorn.raw:{_label(sender)}",
        )

        def connect_through(_model: Any, through_model: Any) -> None:
            for sig, receiver in (self.signals or {}).items():
                sig.connect(receiver, sender=through_model, weak=weak, **kwargs)

        if isinstance(through, str):  # through="ArticleTag": resolved later
            lazy_related_operation(connect_through, sender, through)
        else:
            connect_through(sender, through)
        return self

    def disconnect(self, sender: Any = None, **kwargs: Any) -> None:
        through = self.prepare_sender(sender)
        if isinstance(through, str):
            through = sender._meta.apps.get_model(
                through if "." in through else f"{sender._meta.app_label}.{through}"
            )
        for sig, receiver in (self.signals or {}).items():
            sig.disconnect(receiver, sender=through, **kwargs)

    def on_m2m_change(self, sender: Any, instance: Any, **kwargs: Any) -> Any:
        return self(instance, sender=sender, **kwargs)

    def should_dispatch(
        self,
        instance: Any,
        *,
        action: str | None = None,
        reverse: bool = False,
        pk_set: set[Any] | None = None,
        **kwargs: Any,
    ) -> bool:
        if action not in self.actions or reverse != self.reverse:
            return False
        if instance.__dict__.get(RAW_ATTR):
            return False
        return pk_set is None or bool(pk_set)

    def context(
        self, instance: Any, pk_set: set[Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return {"related": {"field": self.related_field, "pks": _sorted(pk_set or ())}}


def _sorted(pks: Any) -> list[Any]:
    try:
        return sorted(pks)
    except TypeError:
        return list(pks)


class dispatch_on_m2m_add(dispatch_on_m2m_change):
    """Dispatch when objects are added to the relation (``post_add``)."""

    def setup_actions(self) -> tuple[str, ...]:
        return ("post_add",)


class dispatch_on_m2m_remove(dispatch_on_m2m_change):
    """Dispatch when objects are removed from the relation (``post_remove``)."""

    def setup_actions(self) -> tuple[str, ...]:
        return ("post_remove",)


class dispatch_on_m2m_clear(dispatch_on_m2m_change):
    """Dispatch when the relation is cleared (``post_clear``).

    Django does not say what was cleared, so the primary keys are read in
    ``pre_clear`` (one query per clear).
    """

    def __init__(
        self,
        fun: Callable[..., Any],
        related_field: str,
        use_transitions: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(fun, related_field, use_transitions=use_transitions, **kwargs)
        self._cleared = threading.local()

    def setup_actions(self) -> tuple[str, ...]:
        return ("post_clear",)

    def on_m2m_change(self, sender: Any, instance: Any, **kwargs: Any) -> Any:
        action = kwargs.get("action")
        if kwargs.get("reverse") == self.reverse:
            if action == "pre_clear":
                if not instance.__dict__.get(RAW_ATTR):
                    related = getattr(instance, self.related_field)
                    pks = set(related.values_list("pk", flat=True))
                    self._pending()[id(instance)] = pks
                return None
            if action == "post_clear":
                kwargs["pk_set"] = self._pending().pop(id(instance), set())
        return super().on_m2m_change(sender, instance, **kwargs)

    def _pending(self) -> dict[int, set[Any]]:
        pending: dict[int, set[Any]] | None = getattr(self._cleared, "pks", None)
        if pending is None:
            pending = self._cleared.pks = {}
        return pending

    def should_dispatch(self, instance: Any, **kwargs: Any) -> bool:
        # A clear sends even when there was nothing to clear.
        return super().should_dispatch(instance, **{**kwargs, "pk_set": None})
