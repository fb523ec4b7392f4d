"""Turn Django's model signals on subscribers into Thorn's subscription signals."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from .. import signals

__all__ = ["connect_subscription_signals"]

_ADDING = "_thorn_adding"


def _pre_save(
    sender: type[Model], instance: Model, raw: bool = False, **kw: Any
) -> None:
    if raw:
        return
    adding = instance._state.adding
    setattr(instance, _ADDING, adding)
    signal = (
        signals.subscription_pre_create if adding else signals.subscription_pre_update
    )
    signals.send(signal, instance)


def _post_save(
    sender: type[Model],
    instance: Model,
    created: bool = False,
    raw: bool = False,
    **kw: Any,
) -> None:
    if raw:
        return
    signal = (
        signals.subscription_post_create
        if created
        else signals.subscription_post_update
    )
    signals.send(signal, instance)


def _pre_delete(sender: type[Model], instance: Model, **kw: Any) -> None:
    signals.send(signals.subscription_pre_delete, instance)


def _post_delete(sender: type[Model], instance: Model, **kw: Any) -> None:
    signals.send(signals.subscription_post_delete, instance)


def connect_subscription_signals(model: type[Model]) -> None:
    """Send Thorn's subscription signals for saves and deletes of ``model``.

    Every path goes through the model (the REST API, the admin, the shell),
    so one connection covers them all. Bulk operations send nothing, as with
    Django's own signals.
    """
    uid = f"thorn-subscription-{model._meta.label_lower}"
    pre_save.connect(_pre_save, sender=model, dispatch_uid=uid)
    post_save.connect(_post_save, sender=model, dispatch_uid=uid)
    pre_delete.connect(_pre_delete, sender=model, dispatch_uid=uid)
    post_delete.connect(_post_delete, sender=model, dispatch_uid=uid)
