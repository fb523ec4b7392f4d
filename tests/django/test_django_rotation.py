"""Secret rotation: the old secret keeps signing Standard Webhooks for the overlap."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from engine_helpers import run_engine_once
from thorn import Event
from thorn.django.models import Subscriber
from thorn.listener import Hook, ListenerThread
from thorn.signing import standard_webhooks_secret

pytestmark = pytest.mark.django_db(transaction=True)


def _verifies(hook: Hook, secret: str) -> bool:
    try:
        Webhook(standard_webhooks_secret(secret)).verify(hook.body, hook.headers)
    except WebhookVerificationError:
        return False
    return True


def _signatures(hook: Hook) -> list[str]:
    return (hook.header("webhook-signature") or "").split()


def _send_one(receiver: ListenerThread, dispatcher: str, settings: Any) -> Hook:
    settings.THORN_DISPATCHER = dispatcher
    before = len(receiver.hooks)
    Event("article.rotated").send({"n": 1})
    if dispatcher == "outbox":
        run_engine_once()
    receiver.wait_for(before + 1, timeout=20)
    return receiver.hooks[-1]


@pytest.fixture
def subscriber(receiver: ListenerThread) -> Subscriber:
    return Subscriber.objects.create(event="article.*", url=receiver.url("/hook"))


@pytest.mark.parametrize("dispatcher", ["default", "outbox"])
def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(
    receiver: ListenerThread, subscriber: Subscriber, settings: Any, dispatcher: str
) -> None:
    old = subscriber.hmac_secret
    subscriber.rotate_secret(overlap="1h")
    subscriber.refresh_from_db()
    new = subscriber.hmac_secret
    assert new != old
    assert subscriber.previous_secret == old

    hook = _send_one(receiver, dispatcher, settings)
    assert len(_signatures(hook)) == 2
    assert _verifies(hook, new)
    assert _verifies(hook, old)
    # Hook-HMAC is signed with the new secret only.
    assert subscriber.sign(hook.body) == hook.header("hook-hmac")

    # The overlap is over: only the new secret signs.
    Subscriber.objects.filter(pk=subscriber.pk).update(
        previous_secret_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    hook = _send_one(receiver, dispatcher, settings)
    assert len(_signatures(hook)) == 1
    assert _verifies(hook, new)
    assert not _verifies(hook, old)


def test_an_overlap_of_zero_drops_the_old_secret_at_once(
    receiver: ListenerThread, subscriber: Subscriber, settings: Any
) -> None:
    old = subscriber.hmac_secret
    settings.THORN_SECRET_ROTATION_OVERLAP = 0
    subscriber.rotate_secret()
    subscriber.refresh_from_db()
    assert subscriber.previous_secret == ""
    assert subscriber.extra_secrets == ()
    hook = _send_one(receiver, "default", settings)
    assert not _verifies(hook, old)
    assert _verifies(hook, subscriber.hmac_secret)


def test_the_default_overlap_is_a_day_and_a_bad_value_is_refused(
    subscriber: Subscriber, settings: Any
) -> None:
    start = timezone.now()
    subscriber.rotate_secret()
    assert subscriber.previous_secret_until is not None
    left = subscriber.previous_secret_until - start
    assert datetime.timedelta(hours=23) < left
    assert left <= datetime.timedelta(hours=24, minutes=1)
    settings.THORN_SECRET_ROTATION_OVERLAP = "a while"
    with pytest.raises(ValueError, match="THORN_SECRET_ROTATION_OVERLAP"):
        subscriber.rotate_secret()
