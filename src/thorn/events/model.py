"""``ModelEvent``: events sent when database models change."""

from __future__ import annotations

import inspect
import logging
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ImproperlyConfigured
from ..filters import Q, compile_filters
from ..request import Request
from ..subscribers import user_ident, validate_event_name
from .base import Event

__all__ = ["ModelEvent", "PreparedMessage"]

logger = logging.getLogger(__name__)


#: Keyword arguments of :class:`Event`; every other key given to
#: :class:`ModelEvent` is a filter.
_EVENT_OPTIONS = frozenset(
    name
    for name, param in inspect.signature(Event.__init__).parameters.items()
    if name not in ("self", "name") and param.kind is param.POSITIONAL_OR_KEYWORD
)


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """A model event message built from an instance, ready to send."""

    name: str
    payload: Any
    sender: Any
    headers: Mapping[str, Any] | None


class ModelEvent(Event):
    """Event related to model changes.

    This event type follows a specific payload format::

        {"event": "(str)event_name",
         "ref": "(URL)model_location",
         "sender": "(User pk)optional_sender",
         "data": {"event specific data": "value"}}

    Events of many-to-many changes (``dispatches_on_m2m_*``) add one key,
    ``"related": {"field": "tags", "pks": [1, 2]}``: the relation and the
    primary keys of the objects added, removed or cleared.

    Args:
        name: Name of the event. It may be a format string expanded with
            the instance: ``"user.{.username}"`` becomes ``"user.alice"``
            (subclasses can override ``_get_name(instance)``).
        *args: Filters as Q objects (``thorn.Q`` or ``django.db.models.Q``).

    Keyword Arguments:
        reverse: A :class:`~thorn.reverse.model_reverser` (or any callable
            taking the instance) giving the ``ref`` URL; default: the
            model's ``webhooks.reverse``, else ``instance.get_absolute_url()``.
            A path gets ``THORN_BASE_URL`` in front when that is set.
        sender_field: Attribute path of the sender, e.g. ``"account.user"``
            uses ``instance.account.user``; default: the model's.
        signal_honors_transaction: Send when the database transaction
            commits, and not at all if it rolls back (default:
            ``THORN_SIGNAL_HONORS_TRANSACTION``, true in Thorn 2). Webhooks of
            one transaction then go out together at commit.
        propagate_errors: Raise errors of a send made from a signal to the
            caller (of ``save()``, or of the commit when the send waited for
            it). Default **False**: errors are logged with the traceback and
            the save goes ahead, as the 1.5 changelog and API reference say
            (the guide's "default True" contradicts them).
        signal_dispatcher: A :class:`~thorn.generic.signals.signal_dispatcher`
            class to connect this event to a model signal (instead of a
            ``dispatches_on_*`` method).
        field__op: Filters, e.g. ``state__eq="PUBLISHED"``; every key needs
            an operator (see :class:`thorn.Q`): ``state="PUBLISHED"`` raises
            ValueError. ``now_*`` operators compare with the previous
            version of the instance (one extra query per save).

    The other keyword arguments are those of :class:`Event`.

    Bulk operations: Django sends no per-row signals for
    ``QuerySet.update()``, ``bulk_create()`` and ``bulk_update()``, so they
    send no webhooks; send them yourself::

        for obj in qs:
            Model.webhooks.events["on_change"].send_from_instance(obj)

    (``QuerySet.delete()`` is not one of them: Django sends ``post_delete``
    for every row when anything listens, so delete events are sent.)
    """

    #: The instance's model, once connected.
    model: Any = None
    #: The model's :class:`~thorn.decorators.WebhookCapable`, once connected.
    webhooks: Any = None

    def __init__(
        self,
        name: str,
        *args: Any,
        reverse: Callable[..., Any] | None = None,
        sender_field: str | None = None,
        signal_honors_transaction: bool | None = None,
        propagate_errors: bool = False,
        signal_dispatcher: Any = None,
        **kwargs: Any,
    ) -> None:
        options = {
            key: kwargs.pop(key) for key in list(kwargs) if key in _EVENT_OPTIONS
        }
        # What is left are filters; Q explains a key without an operator.
        self.filter: Q = compile_filters(*args, **kwargs)
        super().__init__(name, **options)
        self.reverse = reverse
        self.sender_field = sender_field
        self._signal_honors_transaction = signal_honors_transaction
        self.propagate_errors = propagate_errors
        self._dispatcher_spec: Any = signal_dispatcher
        self._dispatcher_options: dict[str, Any] = {}
        self._signal_dispatcher: Any = None

    # -- names ------------------------------------------------------------------

    @property
    def _name_is_template(self) -> bool:
        return "{" in self.name or "}" in self.name

    def _validate_name(self, name: str) -> str:
        if "{" not in name and "}" not in name:
            return super()._validate_name(name)
        try:
            fields = list(string.Formatter().parse(name))
        except ValueError as exc:
            raise ValueError(
                f"event name {name!r} is not a valid format string ({exc}): "
                "write fields like 'user.{.username}', and {{ }} for braces"
            ) from None
        # Check the words around the fields now; the expansion is checked
        # again for every instance.
        sample = "".join(
            text + ("x" if field is not None else "") for text, field, *_ in fields
        )
        try:
            validate_event_name(sample)
        except ValueError as exc:
            raise ValueError(str(exc).replace(repr(sample), repr(name))) from None
        return name

    def _get_name(self, instance: Any) -> str:
        """The event name for ``instance`` (a format name is expanded with it)."""
        if instance is None or not self._name_is_template:
            return self.name
        try:
            name = self.name.format(instance)
        except (AttributeError, IndexError, KeyError, ValueError) as exc:
            raise ValueError(
                f"event name {self.name!r} cannot be expanded for a "
                f"{type(instance).__name__} ({exc!r}): use fields that read the "
                "instance, like '{.username}'"
            ) from exc
        try:
            return validate_event_name(name)
        except ValueError as exc:
            raise ValueError(
                f"event name {self.name!r} expanded to an invalid name: {exc}"
            ) from None

    # -- dispatch mechanism ---------------------------------------------------------

    def _dispatches_on(self, kind: str, **options: Any) -> ModelEvent:
        if self.model is not None:
            raise ImproperlyConfigured(
                f"{self!r} is already connected to {self.model.__name__}: choose "
                "how it dispatches before the model is decorated"
            )
        self._dispatcher_spec = kind
        self._dispatcher_options = options
        self._signal_dispatcher = None
        return self

    def dispatches_on_create(self) -> ModelEvent:
        """Send when a new instance is saved."""
        return self._dispatches_on("dispatch_on_create")

    def dispatches_on_change(self) -> ModelEvent:
        """Send when an existing instance is saved."""
        return self._dispatches_on("dispatch_on_change")

    def dispatches_on_delete(self) -> ModelEvent:
        """Send when an instance is deleted."""
        return self._dispatches_on("dispatch_on_delete")

    def dispatches_on_m2m_add(self, related_field: str) -> ModelEvent:
        """Send when objects are added to the many-to-many ``related_field``."""
        return self._dispatches_on("dispatch_on_m2m_add", related_field=related_field)

    def dispatches_on_m2m_remove(self, related_field: str) -> ModelEvent:
        """Send when objects are removed from the many-to-many ``related_field``."""
        return self._dispatches_on(
            "dispatch_on_m2m_remove", related_field=related_field
        )

    def dispatches_on_m2m_clear(self, related_field: str) -> ModelEvent:
        """Send when the many-to-many ``related_field`` is cleared."""
        return self._dispatches_on("dispatch_on_m2m_clear", related_field=related_field)

    @property
    def has_dispatch_mechanism(self) -> bool:
        """Was a ``dispatches_on_*`` method called (or ``signal_dispatcher`` given)?"""
        return self._dispatcher_spec is not None

    @property
    def signal_dispatcher(self) -> Any:
        """The signal dispatcher connecting this event (None until chosen)."""
        if self._signal_dispatcher is None and self._dispatcher_spec is not None:
            self._signal_dispatcher = self._build_signal_dispatcher(
                self._dispatcher_spec
            )
        return self._signal_dispatcher

    def _build_signal_dispatcher(self, spec: Any) -> Any:
        if isinstance(spec, str):
            env = self._app.env
            signals = getattr(env, "signals", None)
            if signals is None:
                raise ImproperlyConfigured(
                    f"{self!r}: the {getattr(env, 'name', '?')} environment has no "
                    "model signals to dispatch on; run under Django "
                    "(DJANGO_SETTINGS_MODULE) or pass ModelEvent(signal_dispatcher=...)"
                )
            spec = getattr(signals, spec)
        if isinstance(spec, type) or not hasattr(spec, "connect"):
            return spec(
                self.on_signal,
                use_transitions=self.filter.uses_transitions,
                **self._dispatcher_options,
            )
        return spec

    def connect_model(self, model: Any) -> None:
        """Connect this event to the signals of ``model``."""
        if self.model is not None and self.model is not model:
            raise ImproperlyConfigured(
                f"{self!r} is already connected to {self.model.__name__}: "
                f"create one ModelEvent per model (also for {model.__name__})"
            )
        dispatcher = self.signal_dispatcher
        if dispatcher is None:
            raise ImproperlyConfigured(
                f"{self!r} has no dispatch mechanism: call .dispatches_on_create(), "
                ".dispatches_on_change(), .dispatches_on_delete() or "
                ".dispatches_on_m2m_add/remove/clear(field) on it"
            )
        dispatcher.connect(sender=model)
        self.model = model

    @property
    def signal_honors_transaction(self) -> bool:
        """Wait for the transaction to commit? (the setting unless given)."""
        if self._signal_honors_transaction is not None:
            return self._signal_honors_transaction
        return bool(self._app.settings.THORN_SIGNAL_HONORS_TRANSACTION)

    # -- from a signal ----------------------------------------------------------

    def should_dispatch(self, instance: Any, **kwargs: Any) -> bool:
        """Do the filters match ``instance`` (and ``previous=``, for ``now_*``)?"""
        return self.filter(instance, kwargs.get("previous"))

    def on_signal(self, instance: Any, **kwargs: Any) -> Any:
        """Called by the signal dispatcher: filter, build the message, send.

        The message is built now (a deleted instance loses its primary key
        afterwards); with :attr:`signal_honors_transaction` it is sent when
        the transaction commits, except through a transactional dispatcher
        (the outbox), which writes it in the transaction itself. Errors are
        logged unless ``propagate_errors`` is set.
        """
        previous = kwargs.pop("previous", None)
        try:
            if not self.should_dispatch(instance, previous=previous, **kwargs):
                return None
            prepared = self.prepare_message(instance, related=kwargs.get("related"))
        except Exception:
            if self.propagate_errors:
                raise
            self._log_error(_describe_instance(instance))
            return None
        send = partial(self._send_prepared, prepared, _describe_instance(instance))
        if self.signal_honors_transaction and not getattr(
            self.dispatcher, "transactional", False
        ):
            # A transactional dispatcher (the outbox) writes its rows in the
            # current transaction, so they commit or roll back with the
            # change itself: deferring to on_commit would only open a window
            # in which a crash loses the event.
            self._app.on_commit(send)
            return None
        return send()

    def _send_prepared(self, prepared: PreparedMessage, what: str) -> Any:
        try:
            return self._send(
                prepared.name,
                prepared.payload,
                prepared.sender,
                headers=prepared.headers,
            )
        except Exception:
            if self.propagate_errors:
                raise
            self._log_error(what, prepared.name)
            return None

    def _log_error(self, what: str, name: str | None = None) -> None:
        logger.exception(
            "could not send webhook event %s for %s; the change itself went "
            "ahead (ModelEvent(propagate_errors=True) raises instead)",
            name or self.name,
            what,
        )

    # -- sending ------------------------------------------------------------------

    def send(  # type: ignore[override]
        self,
        instance: Any,
        data: Any = None,
        sender: Any = None,
        *,
        related: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        on_success: Callable[[Request], Any] | None = None,
        on_error: Callable[[Request, BaseException], Any] | None = None,
        on_timeout: Callable[[Request, BaseException], Any] | None = None,
    ) -> Any:
        """Send event for model instance, now.

        Args:
            instance: the model instance the event is about.
            data: event specific data (default: the model's payload).
            sender: the sender (default: read through ``sender_field``).

        The other keyword arguments are those of :meth:`Event.send`;
        ``headers`` are added to the model's.
        """
        prepared = self.prepare_message(
            instance, data, sender, related=related, headers=headers
        )
        return self._send(
            prepared.name,
            prepared.payload,
            prepared.sender,
            headers=prepared.headers,
            context=context,
            timeout=timeout,
            on_success=on_success,
            on_error=on_error,
            on_timeout=on_timeout,
        )

    def send_from_instance(
        self,
        instance: Any,
        context: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send the event for ``instance`` as a signal would, now.

        The payload, ref and sender come from the instance; filters are not
        applied (the caller chose to send) and the transaction is not waited
        for.
        """
        return self.send(instance, context=context, **kwargs)

    def prepare_message(
        self,
        instance: Any,
        data: Any = None,
        sender: Any = None,
        *,
        related: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> PreparedMessage:
        """Build the message, sender and headers of ``instance``."""
        name = self._get_name(instance)
        self.check_name(name)
        if data is None:
            data = self.instance_data(instance)
        if sender is None:
            sender = self.instance_sender(instance)
        message = self.to_message(
            data, instance=instance, sender=sender, ref=self.get_absolute_url(instance)
        )
        if related is not None:
            message["related"] = dict(related)
        all_headers = {**self.instance_headers(instance), **(headers or {})}
        return PreparedMessage(
            name, self.prepare_payload(message), sender, all_headers or None
        )

    def to_message(
        self, data: Any, instance: Any = None, sender: Any = None, ref: Any = None
    ) -> dict[str, Any]:
        """The model event message (``sender`` becomes its primary key)."""
        return {
            "event": self._get_name(instance),
            "ref": ref,
            "sender": user_ident(sender),
            "data": data,
        }

    # -- reading the instance -------------------------------------------------------

    def _webhooks_of(self, instance: Any) -> Any:
        if self.webhooks is not None:
            return self.webhooks
        from ..decorators import WebhookCapable

        found = getattr(type(instance), "webhooks", None)
        return found if isinstance(found, WebhookCapable) else None

    def get_absolute_url(self, instance: Any) -> str | None:
        """The ``ref`` URL of ``instance`` (None when there is no way to get one)."""
        reverser = self.reverse
        if reverser is None:
            reverser = getattr(self._webhooks_of(instance), "reverse", None)
        if reverser is not None:
            url = reverser(instance)
        else:
            method = getattr(instance, "get_absolute_url", None)
            url = method() if callable(method) else None
        if url is None:
            return None
        url = str(url)
        base = self._app.settings.THORN_BASE_URL
        if base and not urlsplit(url).scheme and not url.startswith("//"):
            return f"{str(base).rstrip('/')}/{url.lstrip('/')}"
        return url

    def instance_data(self, instance: Any) -> Any:
        """Event data: ``Model.webhooks.payload(instance)``, else ``{}``."""
        webhooks = self._webhooks_of(instance)
        if webhooks is not None:
            data = webhooks.payload(instance)
        else:
            method = getattr(instance, "webhook_payload", None)
            data = method() if callable(method) else None
        return {} if data is None else data

    def instance_headers(self, instance: Any) -> Mapping[str, Any]:
        """Extra HTTP headers: ``Model.webhooks.headers(instance)``, else none."""
        webhooks = self._webhooks_of(instance)
        if webhooks is not None:
            headers = webhooks.headers(instance)
        else:
            method = getattr(instance, "webhook_headers", None)
            headers = method() if callable(method) else None
        if headers is None:
            return {}
        if not isinstance(headers, Mapping):
            raise TypeError(
                f"the webhook headers of {type(instance).__name__} must be a "
                f"mapping of header names to values, not {type(headers).__name__}"
            )
        return headers

    def instance_sender(self, instance: Any) -> Any:
        """The sender: ``instance.<sender_field>`` (None if unset or a link is None)."""
        field = self.sender_field
        if field is None:
            field = getattr(self._webhooks_of(instance), "sender_field", None)
        if not field:
            return None
        obj = instance
        for attr in field.split("."):
            obj = getattr(obj, attr)
            if obj is None:
                return None
        return obj


def _describe_instance(instance: Any) -> str:
    """``Article pk=3``: names an instance in logs without its contents."""
    return f"{type(instance).__name__} pk={getattr(instance, 'pk', None)!r}"
