"""Django web framework environment: settings, subscriber model, commit hooks."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from functools import partial
from types import ModuleType
from typing import Any

from ..conf import import_string
from ..exceptions import ImproperlyConfigured
from ..subscribers import user_ident
from . import Env

__all__ = ["DjangoEnv", "resolve_subscriber_model"]

logger = logging.getLogger(__name__)

#: The setting that names a custom subscriber model.
SUBSCRIBER_MODEL_SETTING = "THORN_SUBSCRIBER_MODEL"


def resolve_subscriber_model(spec: str | type | None, default: str) -> Any:
    """The model class ``THORN_SUBSCRIBER_MODEL`` names.

    ``spec`` is Django's ``"app_label.Model"`` form, or an import path
    (``"thorn.django.models:Subscriber"`` as the manual writes it, or
    ``"thorn.django.models.Subscriber"``), or the class itself; None means
    ``default``.

    Raises:
        ImproperlyConfigured: naming the setting, when nothing can be found.
    """
    if spec is None or spec == "":
        spec = default
    if not isinstance(spec, str):
        return spec
    if ":" in spec or spec.count(".") > 1:
        return import_string(spec, setting=SUBSCRIBER_MODEL_SETTING)
    from django.apps import apps

    try:
        return apps.get_model(spec, require_ready=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"{SUBSCRIBER_MODEL_SETTING}={spec!r} must be 'app_label.ModelName' "
            "or an import path such as 'thorn.django.models:Subscriber'"
        ) from None
    except LookupError as exc:
        raise ImproperlyConfigured(
            f"{SUBSCRIBER_MODEL_SETTING}={spec!r} names no installed model ({exc}); "
            "add its app to INSTALLED_APPS or fix the name"
        ) from None


class DjangoEnv(Env):
    """Thorn Django environment.

    Settings come from ``django.conf.settings``, stored subscribers from the
    ``THORN_SUBSCRIBER_MODEL`` model (``thorn.django.models.Subscriber`` by
    default), transaction hooks from ``django.db.transaction.on_commit``.
    """

    name = "django"

    reverse_cls = "django.urls:reverse"
    settings_cls = "django.conf:settings"
    signals_cls = "thorn.django.signals"
    subscriber_cls = "thorn.django.models:Subscriber"

    def __init__(self) -> None:
        self._receivers: list[Callable[..., None]] = []
        #: Database aliases whose subscriber table is known to exist.
        self._tables_seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._model: Any = None  # the subscriber model, once resolved
        self._model_watched = False
        #: Compiled subscriber queries (thorn.django.lookup), made on first use.
        self._lookups: Any = None

    @staticmethod
    def autodetect(env: str = "DJANGO_SETTINGS_MODULE") -> bool:
        """True when ``env`` names a settings module and Django can be imported.

        A program that called ``django.conf.settings.configure()`` (no
        settings module) is detected too.
        """
        if os.environ.get(env):
            try:
                import django  # noqa: F401
            except ImportError:
                return False
            return True
        conf = sys.modules.get("django.conf")
        return bool(conf is not None and conf.settings.configured)

    @property
    def config(self) -> Any:
        """Django's settings object."""
        return import_string(self.settings_cls)

    # -- the subscriber model ------------------------------------------------

    @property
    def Subscriber(self) -> Any:
        """The subscriber model class (``THORN_SUBSCRIBER_MODEL``).

        Kept until a setting changes (resolving it was 6% of a send).
        """
        model = self._model
        if model is None:
            spec = getattr(self.config, SUBSCRIBER_MODEL_SETTING, None)
            model = resolve_subscriber_model(spec, self.subscriber_cls)
            with self._lock:
                if not self._model_watched:
                    self._model_watched = True
                    self.setting_changed(self._forget_model)
                self._model = model
        return model

    def _forget_model(self, name: str) -> None:
        self._model = None

    @property
    def Subscribers(self) -> Any:
        """The subscriber model's default manager."""
        return self.Subscriber._default_manager

    def subscribers_for(
        self, event: str, *, sender: Any = None, app: Any = None
    ) -> Iterable[Any]:
        """Active stored subscribers whose pattern matches ``event``.

        Returns nothing (and logs at debug level) while Django's app
        registry is not ready or the subscriber table has not been migrated
        yet, so events sent during start-up or before ``migrate`` are no
        error.
        """
        from django.apps import apps

        if not apps.ready:
            logger.debug(
                "no stored subscribers for %s: Django's apps are not ready", event
            )
            return ()
        model = self.Subscriber
        manager = model._default_manager
        if not self._table_exists(model, manager.db):
            logger.debug(
                "no stored subscribers for %s: table %s does not exist yet "
                "(run manage.py migrate)",
                event,
                model._meta.db_table,
            )
            return ()
        unused = self._unused_fields(model)

        def queryset() -> Any:
            found = manager.matching(event, sender)
            return found.defer(*unused) if unused else found

        from ..django.lookup import compiles

        if not compiles(manager, event):
            return queryset()  # type: ignore[no-any-return]
        lookups = self._lookups
        if lookups is None:
            from ..django.lookup import LookupCache

            with self._lock:
                if self._lookups is None:
                    self._lookups = made = LookupCache()
                    self.setting_changed(lambda name: made.forget())
            lookups = self._lookups
        return lookups.subscribers(  # type: ignore[no-any-return]
            queryset, model, manager.db, event, user_ident(sender)
        )

    #: Fields of Thorn's subscriber model that sending never reads: left out
    #: of the rows a send loads (one event to 10,000 subscribers converts
    #: 20,000 fewer datetimes). Read on access, like any deferred field.
    UNUSED_WHEN_SENDING = (
        "created_at",
        "updated_at",
        "disabled_reason",
        "disabled_at",
        "failing_since",
    )

    def _unused_fields(self, model: Any) -> tuple[str, ...]:
        names = {f.name for f in model._meta.concrete_fields}
        return tuple(n for n in self.UNUSED_WHEN_SENDING if n in names)

    def _table_exists(self, model: Any, alias: str) -> bool:
        key = (alias, model._meta.db_table)
        if key in self._tables_seen:
            return True
        # Asking the database beats catching the error of a failed query:
        # on PostgreSQL that error would break the caller's transaction.
        from django.db import connections

        with connections[alias].cursor() as cursor:
            names = connections[alias].introspection.table_names(cursor)
        if model._meta.db_table not in names:
            return False
        with self._lock:
            self._tables_seen.add(key)
        return True

    # -- framework hooks --------------------------------------------------------

    def on_commit(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call ``fun(*args, **kwargs)`` when the current transaction commits.

        Outside a transaction (autocommit) it is called at once.
        """
        from django.db import transaction

        transaction.on_commit(partial(fun, *args, **kwargs))

    @property
    def reverse(self) -> Callable[..., str]:
        """Django's ``reverse``."""
        fun: Callable[..., str] = import_string(self.reverse_cls)
        return fun

    @property
    def signals(self) -> ModuleType:
        """The module with Thorn's Django signal dispatchers (imported lazily)."""
        return importlib.import_module(self.signals_cls)

    def setting_changed(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(name)`` whenever Django changes a setting.

        Django sends ``setting_changed`` from ``override_settings`` and the
        test tools; Thorn resets its cached ``THORN_*`` values on it. The
        receiver is held strongly (a lambda or a local function would
        otherwise vanish at once); :meth:`close` disconnects it.
        """
        from django.core.signals import setting_changed

        def receiver(*, setting: str, **kwargs: Any) -> None:
            callback(setting)

        setting_changed.connect(receiver, weak=False)
        self._receivers.append(receiver)

    def close(self) -> None:
        """Disconnect the ``setting_changed`` receivers this environment made."""
        from django.core.signals import setting_changed

        while self._receivers:
            setting_changed.disconnect(self._receivers.pop())
        # What those receivers kept fresh is not kept any more.
        with self._lock:
            self._model = None
            self._model_watched = False
            self._lookups = None
