"""Dispatching by signal: connect a function to a framework's observer signals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..conf import import_string

__all__ = ["signal_dispatcher"]

Receiver = Callable[..., Any]


class signal_dispatcher:
    """Signal dispatcher abstraction.

    Calls ``fun(instance, **context)`` when one of :attr:`signals` fires and
    :meth:`should_dispatch` agrees. A framework integration subclasses it
    (see ``thorn.django.signals``) and says in :meth:`setup_signals` which
    signals to listen to, with which receiver.

    Args:
        fun: what to call, usually :meth:`thorn.ModelEvent.on_signal`.
        use_transitions: the event compares with the previous version of the
            instance (``now_*`` filters), so the dispatcher must provide it
            as ``previous=`` in the context.

    A signal object needs a ``connect(receiver, sender=..., weak=...)``
    method, as Django's, blinker's and Celery's signals have.
    """

    #: ``{signal: receiver}``, filled in by :meth:`setup_signals`.
    signals: Mapping[Any, Receiver] | None = None

    def __init__(
        self, fun: Callable[..., Any], use_transitions: bool = False, **kwargs: Any
    ) -> None:
        self.fun = fun
        self.use_transitions = use_transitions
        self.options = kwargs
        self.signals = self.load_signals(self.setup_signals())

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.fun!r}>"

    def setup_signals(self) -> Mapping[Any, Receiver]:
        """Return ``{signal: receiver}``; a signal may be an import string."""
        return {}

    def load_signals(self, signals: Mapping[Any, Receiver]) -> dict[Any, Receiver]:
        """Resolve import strings (``"package.module:signal"``) to signals."""
        return {
            (import_string(sig) if isinstance(sig, str) else sig): receiver
            for sig, receiver in signals.items()
        }

    def prepare_sender(self, sender: Any) -> Any:
        """The sender to connect to, from the one given to :meth:`connect`."""
        return sender

    def connect(
        self, sender: Any = None, weak: bool = False, **kwargs: Any
    ) -> signal_dispatcher:
        """Connect every receiver to its signal, for ``sender`` (None: any)."""
        sender = self.prepare_sender(sender)
        if sender is not None:
            kwargs["sender"] = sender
        for sig, receiver in (self.signals or {}).items():
            sig.connect(receiver, weak=weak, **kwargs)
        return self

    def disconnect(self, sender: Any = None, **kwargs: Any) -> None:
        """Undo :meth:`connect` (for tests, or to silence a model for a while)."""
        sender = self.prepare_sender(sender)
        if sender is not None:
            kwargs["sender"] = sender
        for sig, receiver in (self.signals or {}).items():
            sig.disconnect(receiver, **kwargs)

    def should_dispatch(self, instance: Any, **kwargs: Any) -> bool:
        """Does this signal call for an event? (``kwargs``: the signal's)."""
        return True

    def context(self, instance: Any, **kwargs: Any) -> dict[str, Any]:
        """Keyword arguments for ``fun``, from the signal's arguments."""
        return {}

    def __call__(self, instance: Any, **kwargs: Any) -> Any:
        """Call ``fun`` for ``instance`` if :meth:`should_dispatch` says so."""
        if not self.should_dispatch(instance, **kwargs):
            return None
        return self.fun(instance, **self.context(instance, **kwargs))
