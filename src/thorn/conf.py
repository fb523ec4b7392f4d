"""Webhooks-related configuration settings, read lazily with documented defaults."""

from __future__ import annotations

import datetime
import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = ["DEFAULTS", "Settings", "event_choices", "import_string"]

#: Every setting Thorn reads, with its default. The manual's names
#: (section 4.5) first, then the settings Thorn 2 adds.
DEFAULTS: dict[str, Any] = {
    "THORN_CHUNKSIZE": 10,
    "THORN_CODECS": None,
    "THORN_SUBSCRIBERS": {},
    "THORN_DISPATCHER": "default",
    "THORN_EVENT_CHOICES": None,
    # The manual keeps the itsdangerous-compatible signer as the default
    # "for compatibility" and calls it highly discouraged; Thorn 2 has no
    # installed base to stay compatible with, so it defaults to the
    # recommended signer. Set "thorn.utils.hmac:compat_sign" for the old one.
    "THORN_HMAC_SIGNER": "thorn.utils.hmac:sign",
    "THORN_DRF_PERMISSION_CLASSES": None,
    "THORN_EVENT_TIMEOUT": 3.0,
    "THORN_RETRY": True,
    "THORN_RETRY_DELAY": 60.0,
    "THORN_RETRY_MAX": 10,
    "THORN_RECIPIENT_VALIDATORS": None,  # None: the documented default set
    # The manual: "disabled by default. It will be enabled by default in
    # Thorn 2.0". This is Thorn 2: webhooks of rolled-back changes are dropped.
    "THORN_SIGNAL_HONORS_TRANSACTION": True,
    "THORN_SUBSCRIBER_MODEL": None,
    # Thorn 2 additions.
    "THORN_RETRY_BACKOFF": True,
    "THORN_RETRY_BACKOFF_MAX": 3600.0,
    "THORN_RETRY_JITTER": True,
    "THORN_PAYLOAD_MAX_SIZE": 1024 * 1024,
    "THORN_RESPONSE_MAX_SIZE": 64 * 1024,
    "THORN_CA_BUNDLE": None,
    "THORN_USER_AGENT": None,
    "THORN_MAX_CONNECTIONS_PER_HOST": 32,
    "THORN_MAX_CONNECTIONS": 512,
    # Prefix for relative model URLs (get_absolute_url() gives a path):
    # "https://example.com". None leaves refs as the reverser returns them.
    "THORN_BASE_URL": None,
    # The durable (outbox) dispatcher's retry ladder, in seconds after the
    # previous try, used unless THORN_RETRY_DELAY / THORN_RETRY_MAX (or an
    # event's retry_delay / retry_max) are set: about a day and a half in
    # all, as the large webhook services do.
    "THORN_RETRY_SCHEDULE": (5, 300, 1800, 7200, 18000, 36000, 36000, 36000),
    # The outbox (Django): a subscriber failing without a single success for
    # this long is disabled (None: never), as the large services do; how
    # many bytes of each answer the attempt log keeps; how long finished
    # messages are kept before thorn_purge deletes them. Durations are a
    # timedelta, seconds, or text such as "5d", "12h".
    "THORN_AUTO_DISABLE_AFTER": datetime.timedelta(days=5),
    "THORN_ATTEMPT_EXCERPT_SIZE": 1024,
    "THORN_RETENTION": datetime.timedelta(days=30),
    "THORN_SECRET_ROTATION_OVERLAP": datetime.timedelta(hours=24),
    # The Celery dispatcher (docs/celery.md): whether the outbox's tables
    # are the truth (None: when thorn.django is installed); seconds a worker
    # leases the deliveries of a task; how long a due delivery may wait
    # unleased before the sweeper publishes it again; the longest retry wait
    # sent as a Celery countdown in outbox mode (longer ones: the sweeper).
    "THORN_CELERY_OUTBOX": None,
    "THORN_CELERY_LEASE": 300.0,
    "THORN_CELERY_SWEEP_GRACE": 60.0,
    "THORN_CELERY_COUNTDOWN_MAX": 600.0,
}


def import_string(path: str, *, setting: str | None = None) -> Any:
    """Import ``"module:attr"`` (or ``"module.attr"``) and return the attribute.

    Raises:
        ImproperlyConfigured: naming ``setting`` when the import fails.
    """
    where = f" (from {setting})" if setting else ""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ImproperlyConfigured(
            f"{path!r}{where} is not an import path: use 'package.module:name'."
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(f"cannot import {path!r}{where}: {exc}") from exc
    return obj


class Settings:
    """Thorn's settings: ``THORN_*`` names read from a source, with defaults.

    The source is any mapping or object with attributes (Django's
    ``settings``, a module, a dict). Values are read when asked for, never at
    import time, and cached until :meth:`reset` (Thorn's Django app calls it
    on ``setting_changed`` so ``override_settings`` works).
    """

    def __init__(
        self,
        source: Mapping[str, Any] | object | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._source = source
        self._overrides = dict(overrides or {})
        self._cache: dict[str, Any] = {}
        self._derived: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: Incremented by every :meth:`reset`: caches built from settings
        #: compare it to know when to rebuild.
        self.generation = 0

    def _lookup(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        source = self._source() if callable(self._source) else self._source
        if isinstance(source, Mapping):
            if name in source:
                return source[name]
        elif source is not None:
            try:
                return getattr(source, name)
            except AttributeError:
                pass
            except Exception as exc:  # e.g. Django's settings not configured
                if type(exc).__name__ != "ImproperlyConfigured":
                    raise
        return DEFAULTS[name]

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("THORN_"):
            raise AttributeError(name)
        if name not in DEFAULTS:
            raise AttributeError(
                f"unknown setting {name!r}; the known ones are listed in "
                "thorn.conf.DEFAULTS"
            )
        try:
            return self._cache[name]
        except KeyError:
            value = self._cache[name] = self._lookup(name)
            return value

    def is_set(self, name: str) -> bool:
        """True if ``name`` was given (source or ``configure``), not defaulted."""
        if name in self._overrides:
            return True
        source = self._source() if callable(self._source) else self._source
        if isinstance(source, Mapping):
            return name in source
        if source is None:
            return False
        try:
            getattr(source, name)
        except AttributeError:
            return False
        except Exception as exc:
            if type(exc).__name__ != "ImproperlyConfigured":
                raise
            return False
        return True

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            return default

    def configure(self, **values: Any) -> None:
        """Set values directly (plain Python programs, tests)."""
        unknown = sorted(set(values) - set(DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(f"unknown Thorn settings: {', '.join(unknown)}")
        self._overrides.update(values)
        self.reset()

    def reset(self, setting: str | None = None) -> None:
        """Forget cached values (all, or the one named)."""
        with self._lock:
            self.generation += 1
            if setting is None:
                self._cache.clear()
                self._derived.clear()
            else:
                self._cache.pop(setting, None)
                for key in [k for k in self._derived if k.startswith(setting)]:
                    del self._derived[key]

    def derived(self, key: str, build: Callable[[], Any]) -> Any:
        """Cache something built from a setting (an import, a parsed list).

        ``key`` must start with the setting's name so :meth:`reset` of that
        setting drops it.
        """
        try:
            return self._derived[key]
        except KeyError:
            value = self._derived[key] = build()
            return value


def event_choices(app: Any = None) -> list[str] | None:
    """Return a list of valid event choices (``THORN_EVENT_CHOICES``), or None."""
    from .app import app_or_default

    choices = app_or_default(app).settings.THORN_EVENT_CHOICES
    if choices is None:
        return None
    out: list[str] = []
    for choice in choices:
        # Django-style (value, label) pairs are accepted as well as names.
        out.append(choice[0] if isinstance(choice, (tuple, list)) else str(choice))
    return out
