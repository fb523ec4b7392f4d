"""Permissions of the subscription API: ``THORN_DRF_PERMISSION_CLASSES``."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from thorn.app import current_app
from thorn.conf import import_string
from thorn.exceptions import ImproperlyConfigured

__all__ = ["extra_permission_classes"]


def extra_permission_classes() -> tuple[type[BasePermission], ...]:
    """The classes ``THORN_DRF_PERMISSION_CLASSES`` names (read at request time)."""
    settings = current_app().settings

    def build() -> tuple[type[BasePermission], ...]:
        spec = settings.THORN_DRF_PERMISSION_CLASSES
        if spec is None:
            return ()
        if isinstance(spec, (str, type)):
            raise ImproperlyConfigured(
                "THORN_DRF_PERMISSION_CLASSES must be a list, e.g. "
                "['rest_framework.permissions.IsAdminUser']"
            )
        classes: list[type[BasePermission]] = []
        for item in spec:
            cls = (
                import_string(item, setting="THORN_DRF_PERMISSION_CLASSES")
                if isinstance(item, str)
                else item
            )
            if not callable(cls):
                raise ImproperlyConfigured(
                    f"THORN_DRF_PERMISSION_CLASSES: {cls!r} is not a permission class"
                )
            classes.append(cls)
        return tuple(classes)

    classes: tuple[type[BasePermission], ...] = settings.derived(
        "THORN_DRF_PERMISSION_CLASSES", build
    )
    return classes
