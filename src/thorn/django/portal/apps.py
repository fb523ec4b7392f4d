"""The portal's app configuration, for projects that override its templates."""

from __future__ import annotations

from django.apps import AppConfig


class PortalConfig(AppConfig):
    """Optional: add ``"thorn.django.portal"`` to ``INSTALLED_APPS``.

    The portal works without it (it finds its own templates); installing it
    lets a project's templates override ``thorn/portal/*.html`` and lets
    ``collectstatic`` copy its script and style sheet.
    """

    name = "thorn.django.portal"
    label = "thorn_portal"
    verbose_name = "Thorn webhooks portal"
