"""Thorn Application: settings, environment, dispatcher and buffering in one object."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from .conf import Settings, import_string
from .exceptions import ImproperlyConfigured

__all__ = ["Thorn", "app_or_default", "current_app"]

_state = threading.local()
_default_app: Thorn | None = None
_default_lock = threading.Lock()


class Thorn:
    """Thorn application.

    Args:
        dispatcher: a dispatcher alias (``"default"``, ``"disabled"``,
            ``"celery"``, ``"outbox"``), an import path, a class, or an
            instance; overrides ``THORN_DISPATCHER``.
        set_as_current: make this the app that ``Event`` objects use.
        settings: where ``THORN_*`` settings come from (a mapping or an
            object); default: the environment's (Django's settings when
            ``DJANGO_SETTINGS_MODULE`` is set), else only the defaults.
    """

    event_cls = "thorn.events:Event"
    model_event_cls = "thorn.events:ModelEvent"
    request_cls = "thorn.request:Request"
    settings_cls = "thorn.conf:Settings"
    subscriber_cls = "thorn.subscribers:Subscriber"

    dispatchers = {
        "default": "thorn.dispatch.default:Dispatcher",
        "disabled": "thorn.dispatch.disabled:Dispatcher",
        "celery": "thorn.dispatch.celery:Dispatcher",
        "outbox": "thorn.dispatch.outbox:Dispatcher",
    }
    environments = ["thorn.environment.django:DjangoEnv"]

    def __init__(
        self,
        dispatcher: Any = None,
        set_as_current: bool = True,
        *,
        settings: Mapping[str, Any] | object | None = None,
    ) -> None:
        self._dispatcher_arg = dispatcher
        self._settings_source = settings
        self._dispatcher: Any = None
        self._dispatcher_key: Any = None
        self._lock = threading.RLock()
        if set_as_current:
            self.set_current()

    # -- current app -----------------------------------------------------------

    def set_current(self) -> None:
        """Make this the current app of this thread (and the default, if none)."""
        global _default_app
        _state.current = self
        if _default_app is None:
            _default_app = self

    def set_default(self) -> None:
        """Make this the app every thread uses unless it set another."""
        global _default_app
        _default_app = self

    # -- environment and settings ------------------------------------------------

    def autodetect_env(self) -> Any:
        from .environment import PlainEnv

        for path in self.environments:
            try:
                env_cls = import_string(path)
            except ImproperlyConfigured:
                continue
            if env_cls.autodetect():
                return env_cls()
        return PlainEnv()

    @cached_property
    def env(self) -> Any:
        env = self.autodetect_env()
        env.setting_changed(self._on_setting_changed)
        return env

    @cached_property
    def settings(self) -> Settings:
        source = self._settings_source
        if source is None:
            source = self.env.config
        settings_cls = import_string(self.settings_cls)
        settings: Settings = settings_cls(source)
        return settings

    @property
    def config(self) -> Settings:
        return self.settings

    def configure(self, **values: Any) -> Thorn:
        """Set ``THORN_*`` values on this app (plain Python programs)."""
        self.settings.configure(**values)
        self._drop_dispatcher()
        return self

    def _on_setting_changed(self, name: str) -> None:
        if name.startswith("THORN_"):
            self.settings.reset(name)
            if name in ("THORN_DISPATCHER",):
                self._drop_dispatcher()

    # -- parts built from settings ----------------------------------------------

    @property
    def dispatcher(self) -> Any:
        spec = self._dispatcher_arg or self.settings.THORN_DISPATCHER
        if self._dispatcher is not None and self._dispatcher_key == spec:
            return self._dispatcher
        with self._lock:
            if self._dispatcher is None or self._dispatcher_key != spec:
                old = self._dispatcher
                self._dispatcher = self._make_dispatcher(spec)
                self._dispatcher_key = spec
                if old is not None:
                    old.close()
        return self._dispatcher

    def _make_dispatcher(self, spec: Any) -> Any:
        if isinstance(spec, str):
            path = self.dispatchers.get(spec, spec)
            if path == spec and ":" not in spec and "." not in spec:
                raise ImproperlyConfigured(
                    f"THORN_DISPATCHER={spec!r} is not one of "
                    f"{sorted(self.dispatchers)} nor an import path 'module:Class'"
                )
            cls = import_string(path, setting="THORN_DISPATCHER")
            return cls(app=self)
        if isinstance(spec, type):
            return spec(app=self)
        return spec

    def _drop_dispatcher(self) -> None:
        with self._lock:
            if self._dispatcher is not None:
                self._dispatcher.close()
            self._dispatcher = None
            self._dispatcher_key = None

    @property
    def Dispatcher(self) -> Any:
        return type(self.dispatcher)

    @property
    def hmac_sign(self) -> Callable[..., str]:
        """The ``THORN_HMAC_SIGNER`` function."""
        spec = self.settings.THORN_HMAC_SIGNER

        def build() -> Callable[..., str]:
            fun = (
                import_string(spec, setting="THORN_HMAC_SIGNER")
                if isinstance(spec, str)
                else spec
            )
            if not callable(fun):
                raise ImproperlyConfigured("THORN_HMAC_SIGNER must name a function")
            return fun  # type: ignore[no-any-return]

        return self.settings.derived("THORN_HMAC_SIGNER", build)  # type: ignore[no-any-return]

    @property
    def signer(self) -> Any:
        from .signing import Signer

        return self.settings.derived(
            "THORN_HMAC_SIGNER:signer", lambda: Signer(hmac_signer=self.hmac_sign)
        )

    @property
    def codecs(self) -> Any:
        from .codecs import Codecs

        return self.settings.derived(
            "THORN_CODECS", lambda: Codecs(self.settings.THORN_CODECS)
        )

    @property
    def recipient_validators(self) -> Sequence[Callable[..., Any]]:
        """``THORN_RECIPIENT_VALIDATORS`` prepared (None: the documented set)."""
        return self.settings.derived(  # type: ignore[no-any-return]
            "THORN_RECIPIENT_VALIDATORS",
            lambda: prepare_validators(self.settings.THORN_RECIPIENT_VALIDATORS),
        )

    @cached_property
    def resolver(self) -> Any:
        from .transport.resolver import Resolver

        return Resolver()

    # -- classes bound to this app ------------------------------------------------

    def _bound(self, path: str, **options: Any) -> Any:
        """The class at import path ``path`` bound to this app, made once."""
        cache = self.__dict__.setdefault("_bound_classes", {})
        if path not in cache:
            cache[path] = self.subclass_with_self(path, **options)
        return cache[path]

    def subclass_with_self(
        self,
        Class: type | str,
        name: str | None = None,
        attribute: str = "app",
        reverse: str | None = None,
        keep_reduce: bool = False,
        **kw: Any,
    ) -> type:
        """Subclass an app-compatible class with this app as its ``app``.

        App-compatible means the class has an ``app`` attribute giving the
        default app (``class Foo: app = None``). ``Class`` may be an import
        path (``"thorn.reverse:model_reverser"``); ``name`` names the
        subclass; ``attribute`` is the attribute holding the app; ``kw``
        become more class attributes. With ``reverse``, the name of this
        app's attribute that gives the subclass (``"model_reverser"``),
        instances pickle as that attribute of the current app and their
        ``__dict__``, unless ``keep_reduce`` keeps the class's own
        ``__reduce__``.
        """
        base = import_string(Class) if isinstance(Class, str) else Class
        attrs: dict[str, Any] = {
            attribute: self,
            "__module__": base.__module__,
            "__doc__": base.__doc__,
            **kw,
        }
        if reverse is not None and not keep_reduce:
            attrs["__reduce__"] = _reduce_through(reverse)
        made: type = type(name or base.__name__, (base,), attrs)
        return made

    @property
    def model_reverser(self) -> Any:
        """:class:`thorn.reverse.model_reverser` using this app's ``reverse``."""
        return self._bound("thorn.reverse:model_reverser", reverse="model_reverser")

    @property
    def webhook_model(self) -> Callable[..., Any]:
        """The :func:`thorn.webhook_model` decorator, with the events of the
        models it decorates sent through this app (those given no app of
        their own)."""
        from .decorators import webhook_model

        def bind(model: Any) -> Any:
            for event in (model.webhooks.events or {}).values():
                if event.app is None:
                    event.app = self
            return model

        def decorate(*args: Any, **kwargs: Any) -> Any:
            made = webhook_model(*args, **kwargs)
            if args:
                return bind(made)
            return lambda model: bind(made(model))

        return decorate

    @property
    def Event(self) -> Any:
        return self._bound(self.event_cls)

    @property
    def ModelEvent(self) -> Any:
        return self._bound(self.model_event_cls)

    @property
    def Request(self) -> Any:
        return self._bound(self.request_cls)

    @property
    def Settings(self) -> Any:
        return import_string(self.settings_cls)

    @property
    def Subscriber(self) -> Any:
        model = self.env.Subscriber
        return model if model is not None else import_string(self.subscriber_cls)

    @property
    def Subscribers(self) -> Any:
        sub = self.Subscriber
        return getattr(sub, "objects", sub)

    @property
    def reverse(self) -> Any:
        return self.env.reverse

    @property
    def signals(self) -> Any:
        """The blinker signals module (:mod:`thorn.signals`)."""
        from . import signals

        return signals

    def on_commit(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.env.on_commit(fun, *args, **kwargs)

    # -- buffering ------------------------------------------------------------------

    def enable_buffer(self, owner: object | None = None) -> None:
        """Start buffering up events instead of dispatching them directly.

        The caller flushes with :meth:`flush_buffer` (say at the end of a web
        request).
        """
        self.dispatcher.enable_buffer(owner=owner)

    def disable_buffer(self, owner: object | None = None) -> None:
        """Disable buffering. Raises BufferNotEmpty if events remain."""
        self.dispatcher.disable_buffer(owner=owner)

    def flush_buffer(self, owner: object | None = None) -> None:
        """Flush events accumulated while buffering was active."""
        self.dispatcher.flush_buffer(owner=owner)

    def close(self) -> None:
        """Close the dispatcher (connections, retry thread) and the environment."""
        self._drop_dispatcher()
        env = self.__dict__.get("env")
        if env is not None and hasattr(env, "close"):
            env.close()


def prepare_validators(spec: Any) -> tuple[Callable[..., Any], ...]:
    """Turn ``THORN_RECIPIENT_VALIDATORS`` into a tuple of callables."""
    from .validators import default_validators, validator_from_dict

    if spec is None:
        return tuple(default_validators())
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (list, tuple)):
        raise ImproperlyConfigured(
            "THORN_RECIPIENT_VALIDATORS must be a list of validators, "
            "e.g. [thorn.validators.ensure_protocol('https')]"
        )
    out: list[Callable[..., Any]] = []
    for item in spec:
        if isinstance(item, str):
            item = import_string(item, setting="THORN_RECIPIENT_VALIDATORS")
        elif isinstance(item, Mapping):
            item = validator_from_dict(dict(item))
        if not callable(item):
            raise ImproperlyConfigured(
                f"THORN_RECIPIENT_VALIDATORS: {item!r} is not callable"
            )
        out.append(item)
    return tuple(out)


def _reduce_through(reverse: str) -> Callable[[Any], tuple[Any, ...]]:
    """A ``__reduce__`` that rebuilds an instance from the current app's
    attribute ``reverse`` (a class bound to that app) and its ``__dict__``."""

    def __reduce__(obj: Any) -> tuple[Any, ...]:
        return (_rebuild_through, (reverse, dict(vars(obj))))

    return __reduce__


def _rebuild_through(reverse: str, state: dict[str, Any]) -> Any:
    cls = getattr(current_app(), reverse)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def current_app() -> Thorn:
    """The app of this thread, else the default app (made on first use)."""
    app: Thorn | None = getattr(_state, "current", None)
    if app is not None:
        return app
    global _default_app
    if _default_app is None:
        with _default_lock:
            if _default_app is None:
                _default_app = Thorn(set_as_current=False)
    return _default_app


def app_or_default(app: Thorn | None = None) -> Thorn:
    return app if app is not None else current_app()
