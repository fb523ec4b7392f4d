"""Subscription signals fire for the model, the REST API and the admin alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from thorn import signals
from thorn.django.models import Subscriber

pytestmark = pytest.mark.django_db

NAMES = [
    "subscription_pre_create",
    "subscription_post_create",
    "subscription_pre_update",
    "subscription_post_update",
    "subscription_pre_delete",
    "subscription_post_delete",
]


@pytest.fixture
def heard() -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []
    receivers = {}
    for name in NAMES:

        def receive(sender: Any, _name: str = name, **kwargs: Any) -> None:
            seen.append((_name, sender.uuid))

        receivers[name] = receive
        getattr(signals, name).connect(receive)
    yield seen
    for name, receive in receivers.items():
        getattr(signals, name).disconnect(receive)


def test_model_saves_and_deletes_send_subscription_signals(heard: Any) -> None:
    sub = Subscriber.objects.create(event="a.*", url="https://example.com/h")
    sub.url = "https://example.com/other"
    sub.save()
    ident = sub.uuid
    sub.delete()
    assert heard == [(name, ident) for name in NAMES]


def test_the_rest_api_sends_them_too(heard: Any, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("ann", password="pw")
    api = APIClient()
    api.force_authenticate(user)
    created = api.post(
        "/hooks/", {"event": "a.*", "url": "https://example.com/h"}, format="json"
    )
    assert created.status_code == 201, created.content
    ident = created.json()["id"]
    assert (
        api.patch(f"/hooks/{ident}/", {"event": "b.*"}, format="json").status_code
        == 200
    )
    assert api.delete(f"/hooks/{ident}/").status_code == 204
    assert [name for name, _ in heard] == NAMES
    assert {str(u) for _, u in heard} == {ident}


def test_a_receiver_that_raises_does_not_stop_the_save(caplog: Any) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    signals.subscription_post_create.connect(broken)
    try:
        Subscriber.objects.create(event="a.*", url="https://example.com/h")
    finally:
        signals.subscription_post_create.disconnect(broken)
    assert Subscriber.objects.count() == 1
    assert "subscription-post-create" in caplog.text
