"""Webhook decorators: ``@webhook_model`` and the ``Model.webhooks`` object."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from .events import ModelEvent
from .exceptions import ImproperlyConfigured

__all__ = ["WebhookCapable", "webhook_model"]

M = TypeVar("M", bound=type)

#: The events the decorator knows when to send, and how.
IMPLICIT_DISPATCH = {
    "on_create": "dispatches_on_create",
    "on_change": "dispatches_on_change",
    "on_delete": "dispatches_on_delete",
}

_EVENT_PREFIX = "on_"


class WebhookCapable:
    """Implementation of ``model.webhooks``.

    The decorator sets ``model.webhooks`` to an instance of this type; the
    nested ``class webhooks:`` of a model, if any, becomes a subclass of it,
    so its ``payload``, ``headers``, ``reverse`` and ``sender_field`` win.

    Args:
        on_create: sent when an instance is created (``post_save``).
        on_change: sent when an instance is changed (``post_save``).
        on_delete: sent when an instance is deleted (``post_delete``).
        reverse: a :class:`~thorn.reverse.model_reverser` (or any callable
            taking an instance) for the ``ref`` URL of every event.
        sender_field: attribute path of the sender, e.g. ``"author.user"``.
        on_<name>: more events; each must have called a ``dispatches_on_*``
            method.

    Individual events can override ``reverse`` and ``sender_field``.
    """

    #: ``{"on_create": ModelEvent, ...}``: the model's events by attribute name.
    events: dict[str, ModelEvent] | None = None
    reverse: Callable[..., Any] | None = None
    sender_field: str | None = None
    #: The decorated model.
    model: Any = None

    def __init__(
        self,
        on_create: ModelEvent | None = None,
        on_change: ModelEvent | None = None,
        on_delete: ModelEvent | None = None,
        reverse: Callable[..., Any] | None = None,
        sender_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        if reverse is not None:
            self.reverse = reverse
        if sender_field is not None:
            self.sender_field = sender_field
        given: dict[str, Any] = {
            "on_create": on_create,
            "on_change": on_change,
            "on_delete": on_delete,
        }
        for key, value in kwargs.items():
            if not key.startswith(_EVENT_PREFIX):
                raise TypeError(
                    f"webhook_model() got an unexpected keyword argument {key!r}: "
                    "events are named on_<something>; the other arguments are "
                    "reverse and sender_field"
                )
            given[key] = value
        given = {key: value for key, value in given.items() if value is not None}
        declared = self._declared_events()
        twice = sorted(set(given) & set(declared))
        if twice:
            raise ImproperlyConfigured(
                f"{', '.join(twice)} given both to webhook_model() and in the "
                "nested 'class webhooks:'; declare each event once"
            )
        self.events = {}
        self.update_events({**declared, **given})

    def __repr__(self) -> str:
        owner = getattr(self.model, "__name__", "no model")
        return f"<{type(self).__name__} of {owner}: {', '.join(self.events or {})}>"

    @classmethod
    def _declared_events(cls) -> dict[str, Any]:
        """``on_*`` attributes of the class (a nested ``class webhooks:``)."""
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if name.startswith(_EVENT_PREFIX):
                    found[name] = value
        return found

    # -- events ---------------------------------------------------------------------

    def update_events(
        self, events: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """Add events (``{"on_<name>": ModelEvent}``) to :attr:`events`."""
        if self.events is None:
            self.events = {}
        for name, event in {**(events or {}), **kwargs}.items():
            if not name.startswith(_EVENT_PREFIX):
                raise TypeError(f"event attribute {name!r} must start with 'on_'")
            if not isinstance(event, ModelEvent):
                hint = (
                    " (a trailing comma makes a tuple)"
                    if isinstance(event, tuple)
                    else ""
                )
                raise TypeError(
                    f"webhooks.{name} must be a ModelEvent, not "
                    f"{type(event).__name__}{hint}"
                )
            self.contribute_to_event(event)
            self.events[name] = event

    def contribute_to_event(self, event: ModelEvent) -> None:
        """Give ``event`` this model's payload, headers, reverse and sender."""
        if event.webhooks is not None and event.webhooks is not self:
            raise ImproperlyConfigured(
                f"{event!r} already belongs to {event.webhooks!r}: create one "
                "ModelEvent per model"
            )
        event.webhooks = self

    def connect_events(
        self, events: Mapping[str, ModelEvent] | None = None, **kwargs: ModelEvent
    ) -> None:
        """Connect events to the model's signals.

        ``on_create``, ``on_change`` and ``on_delete`` get their dispatch
        mechanism implicitly; every other event must have one already.
        """
        if self.model is None:
            raise ImproperlyConfigured(
                "connect_events() needs a model: call contribute_to_model(model)"
            )
        for name, event in {**(events or {}), **kwargs}.items():
            if not event.has_dispatch_mechanism:
                implicit = IMPLICIT_DISPATCH.get(name)
                if implicit is None:
                    raise ImproperlyConfigured(
                        f"{self.model.__name__}.webhooks.{name} = {event!r} has no "
                        "dispatch mechanism: only on_create, on_change and "
                        "on_delete have one implicitly, so call "
                        ".dispatches_on_create(), .dispatches_on_change(), "
                        ".dispatches_on_delete() or "
                        ".dispatches_on_m2m_add/remove/clear('field') on it"
                    )
                getattr(event, implicit)()
            event.connect_model(self.model)

    def contribute_to_model(self, model: Any) -> None:
        """Become ``model.webhooks`` and connect the events to its signals."""
        self.model = model
        model.webhooks = self
        self.connect_events(self.events)

    # -- what the events read from the model ------------------------------------------

    def delegate_to_model(
        self, instance: Any, meth: str, *args: Any, **kwargs: Any
    ) -> Any:
        """Call ``instance.<meth>(*args, **kwargs)``; None if it has no such method."""
        fun = getattr(instance, meth, None)
        if fun is None:
            return None
        return fun(*args, **kwargs)

    def payload(self, instance: Any) -> Any:
        """Event data for ``instance`` (default: its ``webhook_payload()``)."""
        return self.delegate_to_model(instance, "webhook_payload")

    def headers(self, instance: Any) -> Mapping[str, Any] | None:
        """Extra HTTP headers for ``instance`` (default: its ``webhook_headers()``)."""
        headers: Mapping[str, Any] | None = self.delegate_to_model(
            instance, "webhook_headers"
        )
        return headers


def _webhooks_class(model: type) -> type[WebhookCapable]:
    nested = model.__dict__.get("webhooks")
    if nested is None:
        return WebhookCapable
    if not isinstance(nested, type):
        raise TypeError(
            f"{model.__name__}.webhooks is already set (to a "
            f"{type(nested).__name__}): decorate a model once, and declare its "
            "events in a nested 'class webhooks:' or as decorator arguments"
        )
    if issubclass(nested, WebhookCapable):
        return nested
    return type(
        f"{model.__name__}Webhooks",
        (nested, WebhookCapable),
        {
            "__module__": model.__module__,
            "__qualname__": f"{model.__qualname__}.webhooks",
        },
    )


def _decorate(model: M, options: Mapping[str, Any]) -> M:
    webhooks = _webhooks_class(model)(**options)
    webhooks.contribute_to_model(model)
    return model


@overload
def webhook_model(model: M, /) -> M: ...
@overload
def webhook_model(**kwargs: Any) -> Callable[[M], M]: ...


def webhook_model(*args: Any, **kwargs: Any) -> Any:
    """Decorate model to send webhooks based on changes to that model.

    Use it bare, with events in a nested class (the 1.5 API)::

        @webhook_model
        class Article(models.Model):
            state = models.CharField(max_length=128, default="PENDING")

            class webhooks:
                sender_field = "author.user"
                on_create = ModelEvent("article.created")
                on_change = ModelEvent("article.changed")
                on_delete = ModelEvent("article.removed")
                on_publish = ModelEvent(
                    "article.published", state__now_eq="PUBLISHED",
                ).dispatches_on_change()

                def payload(self, article):
                    return {"title": article.title}

                def headers(self, article):
                    return {"X-Article-State": article.state}

    or with the same things as arguments: ``@webhook_model(on_create=...,
    on_change=..., on_delete=..., on_<name>=..., sender_field=...,
    reverse=...)`` (see :class:`WebhookCapable`). It sets ``Model.webhooks``
    and connects the events to the model's signals when the class is
    defined.
    """
    if args:
        if len(args) == 1 and not kwargs and isinstance(args[0], type):
            return _decorate(args[0], {})
        raise TypeError(
            "webhook_model takes keyword arguments: use @webhook_model or "
            "@webhook_model(on_create=ModelEvent(...), sender_field=...)"
        )

    def decorate(model: M) -> M:
        return _decorate(model, kwargs)

    return decorate
