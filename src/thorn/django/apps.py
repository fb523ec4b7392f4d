"""The Django app configuration of ``thorn.django``."""

from __future__ import annotations

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
