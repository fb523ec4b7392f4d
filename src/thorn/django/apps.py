"""The Django app configuration of ``thorn.django``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ThornConfig(AppConfig):
    """Thorn webhooks: add ``"thorn.django"`` to ``INSTALLED_APPS``."""

    name = "thorn.django"
    label = "thorn"
    verbose_name = "Thorn webhooks"
    # Fixed here so the migrations do not depend on the project's
    # DEFAULT_AUTO_FIELD.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .receivers import connect_subscription_signals

        connect_subscription_signals(self._subscriber_model())

    def _subscriber_model(self) -> Any:
        from ..app import current_app
        from ..environment.django import DjangoEnv, resolve_subscriber_model

        spec = current_app().settings.THORN_SUBSCRIBER_MODEL
        try:
            return resolve_subscriber_model(spec, DjangoEnv.subscriber_cls)
        except Exception:  # thorn.E008 reports a bad setting
            return resolve_subscriber_model(None, DjangoEnv.subscriber_cls)
