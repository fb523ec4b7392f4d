"""Django-related utilities: model instances to and from plain JSON."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models

__all__ = ["deserialize_model", "serialize_model"]


def serialize_model(m: models.Model | dict[str, Any]) -> dict[str, Any]:
    """``{"app_label", "model_name", "pk"}`` naming model instance ``m``.

    The primary key is written as JSON can carry it (a UUID key becomes
    text). Already serialized data is returned as it is.
    """
    if isinstance(m, dict):
        return m
    meta = m._meta
    pk: Any = m.pk
    if not isinstance(pk, (int, str)):
        pk = meta.pk.value_to_string(m) if meta.pk is not None else str(pk)
    return {"app_label": meta.app_label, "model_name": meta.model_name, "pk": pk}


def deserialize_model(m: models.Model | dict[str, Any]) -> models.Model:
    """The instance :func:`serialize_model` described, read from the database.

    An instance is returned as it is.

    Raises:
        LookupError: no such model is installed.
        ObjectDoesNotExist: the row is gone (the model's ``DoesNotExist``).
    """
    if isinstance(m, models.Model):
        return m
    model = apps.get_model(m["app_label"], m["model_name"])
    instance: models.Model = model._default_manager.get(pk=m["pk"])
    return instance
