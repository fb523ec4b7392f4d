"""The subscriber portal, server side: ownership, validation, CSRF, actions, snippets.

Test events go to real receivers on 127.0.0.1; deliveries are made by the
real outbox and delivery engine; the verification snippets run in their own
interpreters (Node.js, Ruby, PHP, Go) when those are installed.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from engine_helpers import run_engine_once
from thorn import Event
from thorn.django.models import Attempt, Delivery, Message, Subscriber
from thorn.django.portal.charts import attempt_chart, success_rates
from thorn.django.portal.forms import MATCH_CHOICES, parse_is_value, show_is_value
from thorn.django.portal.sending import RATE_LIMIT
from thorn.listener import Hook, ListenerThread, Reply
from thorn.matchers import MATCHERS
from thorn.receiver import verify_request
from thorn.request import new_id
from thorn.signing import sign_standard, standard_webhooks_secret
from thorn.utils.hmac import random_secret
from thorn.validators import block_internal_ips

pytestmark = pytest.mark.django_db(transaction=True)


def stored_delivery(
    message: Message, sub: Subscriber, *, id: str | None = None, status: str = "pending"
) -> Delivery:
    """A stored delivery of ``message`` to ``sub`` with a tiny JSON body."""
    delivery: Delivery = Delivery.objects.create(
        id=id or new_id(),
        message=message,
        subscriber=sub,
        event="article.created",
        url=sub.url,
        content_type="application/json",
        body=b"{}",
        status=status,
    )
    return delivery


ROOT = "/webhooks/"
SECRET = "portal-secret-<&>\"'-Hq3Lm8Vx1Tz6Rw2Y"


# -- fixtures and helpers -------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> None:
    cache.clear()


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password="alice-pw")


@pytest.fixture
def mallory(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("mallory", password="mallory-pw")


@pytest.fixture
def web(alice: Any) -> Client:
    """A browser logged in as alice (CSRF checks as in a real browser)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


@pytest.fixture
def intruder(mallory: Any) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(mallory)
    return client


@pytest.fixture
def sub(alice: Any, receiver: ListenerThread) -> Subscriber:
    """Alice's subscription to article.* at a real receiver."""
    return Subscriber.objects.create(
        user=alice, event="article.*", url=receiver.url("/hook"), hmac_secret=SECRET
    )


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def csrf_token(client: Client, path: str = ROOT) -> str:
    """The token a page's forms carry, as a browser would read it."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def post(client: Client, path: str, data: dict[str, Any] | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """POST with the CSRF token a page of the portal gave."""
    token = csrf_token(client, ROOT + "new/")
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": token}, **extra)


def form_data(
    *, filters: Sequence[tuple[str, str, str]] = (), initial: int = 0, **fields: str
) -> dict[str, str]:
    data = {
        "event": "article.*",
        "url": "https://hooks.example.com/in",
        "content_type": "application/json",
        "hmac_digest": "sha256",
        **fields,
        "filters-TOTAL_FORMS": str(len(filters)),
        "filters-INITIAL_FORMS": str(initial),
        "filters-MIN_NUM_FORMS": "0",
        "filters-MAX_NUM_FORMS": "20",
    }
    for index, (path, match, value) in enumerate(filters):
        data[f"filters-{index}-field"] = path
        data[f"filters-{index}-match"] = match
        data[f"filters-{index}-value"] = value
    return data


def field_block(page: str, name: str) -> str:
    """The markup of one form field: its label, input, help and errors."""
    found = re.search(
        rf'<div class="field[^"]*">\s*<label for="id_{re.escape(name)}".*?</div>',
        page,
        re.S,
    )
    assert found, f"no field {name}"
    return found.group(0)


def deliver(settings: Any, sender: Any, *, run: bool = True) -> None:
    """Send one event through the outbox; let the engine make one round."""
    settings.THORN_DISPATCHER = "outbox"
    Event("article.created").send({"title": "The Mighty Bear"}, sender=sender)
    if run:
        run_engine_once()


# -- who may see what -----------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(
    sub: Subscriber, settings: Any
) -> None:
    settings.LOGIN_URL = "/accounts/sign-in/"
    client = Client(enforce_csrf_checks=True)
    for path in [
        ROOT,
        ROOT + "new/",
        f"{ROOT}{sub.uuid}/",
        f"{ROOT}{sub.uuid}/verify/",
        ROOT + "deliveries/",
    ]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(f"/accounts/sign-in/?next={path}")
    for path in [f"{ROOT}{sub.uuid}/rotate/", f"{ROOT}{sub.uuid}/disable/"]:
        response = client.post(path)
        assert response.status_code in (302, 403), path
    sub.refresh_from_db()
    assert (sub.hmac_secret, sub.active) == (SECRET, True)


def test_another_users_subscription_is_a_404_on_every_page_and_action(
    sub: Subscriber, intruder: Client, mallory: Any
) -> None:
    for page in ["", "edit/", "delete/", "verify/"]:
        assert intruder.get(f"{ROOT}{sub.uuid}/{page}").status_code == 404, page
    for action in ["secret/", "rotate/", "test/", "disable/", "enable/", "delete/"]:
        response = post(intruder, f"{ROOT}{sub.uuid}/{action}")
        assert response.status_code == 404, action
    response = post(intruder, f"{ROOT}{sub.uuid}/edit/", form_data(event="user.*"))
    assert response.status_code == 404
    sub.refresh_from_db()
    assert (sub.event, sub.hmac_secret, sub.active) == ("article.*", SECRET, True)
    listing = text(intruder.get(ROOT))
    assert str(sub.uuid) not in listing
    assert sub.url not in listing
    assert Subscriber.objects.filter(user=mallory).count() == 0


def test_a_subscription_without_a_user_is_in_nobodys_portal(web: Client) -> None:
    site_wide = Subscriber.objects.create(
        event="article.*", url="https://ops.example.com/hooks"
    )
    assert web.get(f"{ROOT}{site_wide.uuid}/").status_code == 404
    assert "ops.example.com" not in text(web.get(ROOT))


def test_another_users_deliveries_are_neither_listed_nor_shown_nor_resent(
    sub: Subscriber,
    intruder: Client,
    web: Client,
    alice: Any,
    settings: Any,
    receiver: ListenerThread,
) -> None:
    receiver.route("/hook", Reply(status=500))
    deliver(settings, alice)
    (delivery,) = Delivery.objects.all()
    assert delivery.status == "failed"
    listing = text(intruder.get(ROOT + "deliveries/"))
    assert delivery.pk not in listing
    assert intruder.get(f"{ROOT}deliveries/{delivery.pk}/").status_code == 404
    assert post(intruder, f"{ROOT}deliveries/{delivery.pk}/resend/").status_code == 404
    response = intruder.get(ROOT + "deliveries/", {"endpoint": str(sub.uuid)})
    assert response.status_code == 404
    response = post(
        intruder, ROOT + "deliveries/resend-failed/", {"endpoint": str(sub.uuid)}
    )
    assert response.status_code == 404
    post(intruder, ROOT + "deliveries/resend-failed/")  # all of mallory's: none
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.pk in text(web.get(ROOT + "deliveries/"))


def test_the_list_shows_own_subscriptions_with_state_and_rate_but_no_secret(
    sub: Subscriber, web: Client, alice: Any, mallory: Any
) -> None:
    off = Subscriber.objects.create(
        user=alice, event="user.created", url="https://a:pw@hooks.example.com/u"
    )
    off.disable("410 Gone from https://hooks.example.com/u")
    theirs = Subscriber.objects.create(
        user=mallory, event="secret.event", url="https://mallory.example.com/"
    )
    now = timezone.now()
    message = Message.objects.create(id=new_id(), event="article.created", data="{}")
    for code in (200, 204, 200, 500):
        delivery = stored_delivery(message, sub)
        Attempt.objects.create(
            delivery=delivery,
            number=1,
            started_at=now - datetime.timedelta(hours=1),
            duration_ms=3.0,
            status_code=code,
        )
    page = text(web.get(ROOT))
    assert "article.*" in page
    assert "user.created" in page
    assert "secret.event" not in page
    assert str(theirs.uuid) not in page
    assert "Disabled" in page
    assert "410 Gone from https://hooks.example.com/u" in page
    assert "75%" in page
    assert "of 4" in page
    assert "https://a:***@hooks.example.com/u" in page  # the password is masked
    assert SECRET not in page
    assert off.hmac_secret not in page


# -- creating and editing: the API's checks, shown beside the fields ------------------


def test_creating_a_subscription_stores_it_for_the_user_with_its_filters(
    web: Client, alice: Any
) -> None:
    response = post(
        web,
        ROOT + "new/",
        form_data(
            url="http://127.0.0.1:9000/in",
            content_type="application/x-www-form-urlencoded",
            hmac_digest="sha512",
            filters=[
                ("data.state", "is", "PUBLISHED"),
                ("data.count", "is", "3"),
                ("data.title", "startswith", "The "),
                ("data.tags", "contains", "python"),
                ("data.slug", "like", r"^bear-\d+$"),
                ("data.extra", "any", ""),
                ("", "is", ""),  # an empty row is ignored
            ],
        ),
    )
    assert response.status_code == 302, text(response)
    created = Subscriber.objects.get(user=alice)
    assert response["Location"] == f"{ROOT}{created.uuid}/"
    assert (created.event, created.url, created.hmac_digest) == (
        "article.*",
        "http://127.0.0.1:9000/in",
        "sha512",
    )
    assert created.content_type == "application/x-www-form-urlencoded"
    assert created.payload_filters == {
        "data.state": "PUBLISHED",
        "data.count": 3,
        "data.title": {"match": "startswith", "value": "The "},
        "data.tags": {"match": "contains", "value": "python"},
        "data.slug": {"match": "like", "value": r"^bear-\d+$"},
        "data.extra": {"match": "any"},
    }
    assert len(created.hmac_secret) == 64
    page = text(web.get(response["Location"]))
    assert "Subscribed to article.*" in page
    assert created.hmac_secret not in page


def test_invalid_values_are_explained_beside_their_fields_as_the_api_says(
    web: Client, alice: Any
) -> None:
    bad = {"event": "article..created", "url": "not a url", "hmac_digest": "md5"}
    response = post(web, ROOT + "new/", form_data(**bad))
    assert response.status_code == 200
    page = text(response)
    assert "Some values need a change" in page
    api = APIClient()
    api.force_authenticate(alice)
    answer = api.post(
        "/hooks/", {**bad, "content_type": "application/json"}, format="json"
    )
    assert answer.status_code == 400
    errors = answer.json()
    for name in ("event", "url", "hmac_digest"):
        block = field_block(page, name)
        assert 'aria-invalid="true"' in block, name
        assert f'aria-describedby="id_{name}_helptext id_{name}_error"' in block or (
            f'aria-describedby="id_{name}_error"' in block
        ), block
        for message in errors[name]:
            assert message in block, (name, message)
    assert "aria-invalid" not in field_block(page, "content_type")
    assert Subscriber.objects.count() == 0


def test_a_missing_url_says_so_beside_the_url(web: Client) -> None:
    page = text(post(web, ROOT + "new/", form_data(url="")))
    assert "This field is required." in field_block(page, "url")
    assert Subscriber.objects.count() == 0


def test_event_choices_are_offered_and_other_events_refused(
    web: Client, settings: Any
) -> None:
    settings.THORN_EVENT_CHOICES = [
        ("article.*", "Every article event"),
        "article.created",
    ]
    page = text(web.get(ROOT + "new/"))
    assert '<select name="event"' in page
    assert '<option value="article.*">Every article event</option>' in page
    response = post(web, ROOT + "new/", form_data(event="user.created"))
    block = field_block(text(response), "event")
    assert "'user.created' is not an event you can subscribe to" in block
    assert "article.*, article.created" in block
    response = post(web, ROOT + "new/", form_data(event="article.created"))
    assert response.status_code == 302


def test_urls_the_recipient_validators_refuse_are_explained_beside_the_url(
    web: Client, settings: Any
) -> None:
    settings.THORN_RECIPIENT_VALIDATORS = None  # the documented default set
    response = post(web, ROOT + "new/", form_data(url="http://10.1.2.3/hooks"))
    block = field_block(text(response), "url")
    assert "private-use address" in block
    assert "webhooks may only go to public addresses" in block
    response = post(web, ROOT + "new/", form_data(url="ftp://example.com/hooks"))
    assert "aria-invalid" in field_block(text(response), "url")
    assert Subscriber.objects.count() == 0


@pytest.mark.parametrize(
    ("row", "where", "message"),
    [
        (("", "is", "x"), "field", "Give the field this value is for"),
        (("data..x", "is", "x"), "field", "Invalid field path 'data..x'"),
        (("data.x", "like", "(unclosed"), "value", "is not a valid regular expression"),
        (("data.x", "any", "x"), "value", '"Is anything" takes no value'),
        (("data.x", "startswith", ""), "value", "Give a value to compare with"),
        (("data.x", "near", "x"), "match", "Select a valid choice"),
    ],
)
def test_each_filter_row_is_checked_and_its_error_shown_in_the_row(
    web: Client, row: tuple[str, str, str], where: str, message: str
) -> None:
    response = post(web, ROOT + "new/", form_data(filters=[row]))
    assert response.status_code == 200
    block = field_block(text(response), f"filters-0-{where}")
    assert message in block
    assert Subscriber.objects.count() == 0


def test_two_rows_for_one_field_are_refused(web: Client) -> None:
    rows = [("data.x", "is", "1"), ("data.x", "is", "2")]
    response = post(web, ROOT + "new/", form_data(filters=rows))
    block = field_block(text(response), "filters-1-field")
    assert "Another row already filters this field" in block


def test_every_matcher_has_a_row_choice_and_is_values_read_back() -> None:
    assert {name for name, _label in MATCH_CHOICES} == set(MATCHERS)
    for shown, value in [
        ("3", 3),
        ('"3"', "3"),
        ("true", True),
        ("null", None),
        ("PUBLISHED", "PUBLISHED"),
        ('""', ""),
        ('{"a": [1, 2]}', {"a": [1, 2]}),
    ]:
        assert parse_is_value(shown) == value
        assert parse_is_value(show_is_value(value)) == value


def test_editing_shows_the_filters_and_saves_changes(web: Client, alice: Any) -> None:
    sub = Subscriber.objects.create(
        user=alice,
        event="article.*",
        url="https://hooks.example.com/in",
        payload_filters={"data.state": "PUBLISHED", "data.n": "3"},
    )
    page = text(web.get(f"{ROOT}{sub.uuid}/edit/"))
    assert 'value="data.state"' in page
    assert 'value="PUBLISHED"' in page
    assert 'value=""3""' in page  # the text 3, in quotes
    data = form_data(
        event="article.published",
        initial=2,
        filters=[
            ("data.state", "is", "DRAFT"),
            ("", "is", ""),  # emptied: removed
            ("data.title", "endswith", "Bear"),
        ],
    )
    response = post(web, f"{ROOT}{sub.uuid}/edit/", data)
    assert response.status_code == 302, text(response)
    sub.refresh_from_db()
    assert sub.event == "article.published"
    assert sub.payload_filters == {
        "data.state": "DRAFT",
        "data.title": {"match": "endswith", "value": "Bear"},
    }
    assert sub.hmac_secret  # unchanged by an edit


# -- CSRF -----------------------------------------------------------------------------


def test_every_form_refuses_a_post_without_its_csrf_token(
    sub: Subscriber, web: Client, alice: Any
) -> None:
    message = Message.objects.create(id=new_id(), event="article.created", data="{}")
    delivery = stored_delivery(message, sub, status="failed")
    paths = [
        ROOT + "new/",
        f"{ROOT}{sub.uuid}/edit/",
        f"{ROOT}{sub.uuid}/delete/",
        f"{ROOT}{sub.uuid}/disable/",
        f"{ROOT}{sub.uuid}/secret/",
        f"{ROOT}{sub.uuid}/rotate/",
        f"{ROOT}{sub.uuid}/test/",
        f"{ROOT}deliveries/{delivery.pk}/resend/",
        ROOT + "deliveries/resend-failed/",
    ]
    for path in paths:
        response = web.post(path, form_data())
        assert response.status_code == 403, path
        assert "CSRF" in response.content.decode(), path
        assert SECRET not in text(response)
    sub.refresh_from_db()
    delivery.refresh_from_db()
    assert (sub.hmac_secret, sub.active, delivery.status) == (SECRET, True, "failed")
    assert Subscriber.objects.filter(user=alice).count() == 1
    # With the token the page gave, the same post works.
    assert post(web, f"{ROOT}{sub.uuid}/disable/").status_code == 302


def test_pages_are_never_cached(sub: Subscriber, web: Client) -> None:
    for response in [
        web.get(ROOT),
        web.get(f"{ROOT}{sub.uuid}/"),
        post(web, f"{ROOT}{sub.uuid}/secret/"),
    ]:
        assert "no-store" in response["Cache-Control"]


# -- actions ---------------------------------------------------------------------------


def test_disabling_and_enabling_keep_pending_deliveries_waiting_in_between(
    sub: Subscriber, web: Client, alice: Any, settings: Any, receiver: ListenerThread
) -> None:
    deliver(settings, alice, run=False)
    response = post(web, f"{ROOT}{sub.uuid}/disable/")
    assert response.status_code == 302
    sub.refresh_from_db()
    assert not sub.active
    assert sub.disabled_reason == "turned off by its owner in the webhooks portal"
    page = text(web.get(response["Location"]))
    assert "Disabled: nothing is sent to it" in page
    assert '<button type="submit" class="button">Enable</button>' in page
    assert run_engine_once() == 0
    (delivery,) = Delivery.objects.all()
    assert delivery.status == "pending"
    assert receiver.hooks == []
    assert post(web, f"{ROOT}{sub.uuid}/enable/").status_code == 302
    sub.refresh_from_db()
    assert sub.active
    assert sub.disabled_reason == ""
    assert run_engine_once() == 1
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert len(receiver.hooks) == 1


def test_deleting_asks_first_then_cancels_what_was_pending(
    sub: Subscriber, web: Client, alice: Any, settings: Any
) -> None:
    deliver(settings, alice, run=False)
    page = text(web.get(f"{ROOT}{sub.uuid}/delete/"))
    assert "Delete the subscription?" in page
    assert Subscriber.objects.filter(pk=sub.pk).exists()
    response = post(web, f"{ROOT}{sub.uuid}/delete/")
    assert response.status_code == 302
    assert response["Location"] == ROOT
    assert not Subscriber.objects.filter(pk=sub.pk).exists()
    (delivery,) = Delivery.objects.all()
    assert delivery.status == "cancelled"
    assert "Deleted the subscription to article.*" in text(web.get(ROOT))


def test_the_secret_is_revealed_only_to_a_post_and_as_json_for_the_script(
    sub: Subscriber, web: Client
) -> None:
    assert SECRET not in text(web.get(f"{ROOT}{sub.uuid}/"))
    assert "•" * 8 + SECRET[-4:] in text(web.get(f"{ROOT}{sub.uuid}/"))
    assert web.get(f"{ROOT}{sub.uuid}/secret/").status_code == 405
    page = text(post(web, f"{ROOT}{sub.uuid}/secret/"))
    assert SECRET in page
    assert standard_webhooks_secret(SECRET) in page
    answer = post(web, f"{ROOT}{sub.uuid}/secret/", HTTP_ACCEPT="application/json")
    assert answer.json() == {
        "secret": SECRET,
        "standard_secret": standard_webhooks_secret(SECRET),
    }


def test_rotating_shows_the_new_secret_once_and_the_old_one_keeps_signing(
    sub: Subscriber, web: Client, settings: Any
) -> None:
    settings.THORN_SECRET_ROTATION_OVERLAP = "6h"
    response = post(web, f"{ROOT}{sub.uuid}/rotate/")
    assert response.status_code == 200
    sub.refresh_from_db()
    new = sub.hmac_secret
    assert new != SECRET
    assert sub.extra_secrets == (SECRET,)
    page = text(response)
    assert new in page
    assert "This is the new secret" in page
    assert "keeps signing webhook-signature until" in page
    assert SECRET not in page  # the old secret is not shown
    assert new not in text(web.get(f"{ROOT}{sub.uuid}/"))
    assert "also signs webhook-signature until" in text(web.get(f"{ROOT}{sub.uuid}/"))


def test_nothing_secret_is_logged(
    sub: Subscriber, web: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    post(web, f"{ROOT}{sub.uuid}/secret/")
    post(web, f"{ROOT}{sub.uuid}/secret/", HTTP_ACCEPT="application/json")
    post(web, f"{ROOT}{sub.uuid}/rotate/")
    post(web, f"{ROOT}{sub.uuid}/test/")
    sub.refresh_from_db()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "rotated in the portal" in logged
    for secret in (SECRET, sub.hmac_secret, standard_webhooks_secret(SECRET)):
        assert secret not in logged


# -- test events -------------------------------------------------------------------


def test_a_test_event_reaches_a_real_receiver_signed_and_its_answer_is_shown(
    sub: Subscriber, web: Client, receiver: ListenerThread
) -> None:
    receiver.route("/hook", Reply(status=202, body=b"thanks <b>"))
    page = text(post(web, f"{ROOT}{sub.uuid}/test/"))
    (hook,) = receiver.wait_for(1)
    assert verify_request(hook.body, hook.headers, SECRET, require_standard=True)
    assert hook.header("hook-event") == "article.test"
    assert hook.header("hook-subscription") == str(sub.uuid)
    assert hook.json()["data"]["test"] is True
    assert "Test event delivered" in page
    assert '<span class="status-code">202</span>' in page
    assert "thanks <b>" in page
    assert hook.header("hook-delivery") in page
    assert re.search(r"<dt>Duration</dt><dd>[\d.]+ ms</dd>", page)
    assert Delivery.objects.count() == 0  # not stored, not retried


def test_a_test_event_shows_a_failing_answer(
    sub: Subscriber, web: Client, receiver: ListenerThread
) -> None:
    receiver.route("/hook", Reply(status=500, body=b"boom"))
    page = text(post(web, f"{ROOT}{sub.uuid}/test/"))
    assert "Test event answered 500" in page
    assert "boom" in page


def test_a_test_event_to_an_internal_address_is_refused_before_sending(
    sub: Subscriber, web: Client, receiver: ListenerThread, settings: Any
) -> None:
    settings.THORN_RECIPIENT_VALIDATORS = [block_internal_ips()]
    page = text(post(web, f"{ROOT}{sub.uuid}/test/"))
    assert "Test event refused" in page
    assert "Refusing to deliver to 127.0.0.1: loopback address" in page
    assert "webhooks may only go to public addresses" in page
    time.sleep(0.2)
    assert receiver.hooks == []


def test_a_test_event_to_a_silent_endpoint_gives_up_at_its_timeout(
    sub: Subscriber, web: Client, receiver: ListenerThread, settings: Any
) -> None:
    settings.THORN_EVENT_TIMEOUT = 0.5
    receiver.route("/hook", Reply(action="hang"))
    page = text(post(web, f"{ROOT}{sub.uuid}/test/"))
    assert "No answer within 0.5 seconds" in page


def test_test_events_are_limited_per_user_and_minute(
    sub: Subscriber, web: Client, receiver: ListenerThread
) -> None:
    for _ in range(RATE_LIMIT):
        assert post(web, f"{ROOT}{sub.uuid}/test/").status_code == 200
    refused = post(web, f"{ROOT}{sub.uuid}/test/")
    assert refused.status_code == 429
    assert f"You sent {RATE_LIMIT} test events in the last minute" in text(refused)
    receiver.wait_for(RATE_LIMIT)
    time.sleep(0.2)
    assert len(receiver.hooks) == RATE_LIMIT


# -- deliveries ------------------------------------------------------------------------


def test_a_failed_delivery_shows_its_tries_and_is_resent(
    sub: Subscriber, web: Client, alice: Any, settings: Any, receiver: ListenerThread
) -> None:
    settings.THORN_RETRY = False
    receiver.route("/hook", [Reply(status=500, body=b"database down"), Reply()])
    deliver(settings, alice)
    (delivery,) = Delivery.objects.all()
    assert delivery.status == "failed"
    listing = text(web.get(ROOT + "deliveries/", {"status": "failed"}))
    assert f'data-delivery="{delivery.pk}" data-status="failed"' in listing
    assert "Resend all 1 failed" in listing
    page = text(web.get(f"{ROOT}deliveries/{delivery.pk}/"))
    assert '<span class="status-code">500</span>' in page
    assert "database down" in page
    assert '"title": "The Mighty Bear"' in page
    response = post(web, f"{ROOT}deliveries/{delivery.pk}/resend/")
    assert response.status_code == 302
    assert response["Location"] == f"{ROOT}deliveries/{delivery.pk}/"
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert run_engine_once() == 1
    page = text(web.get(response["Location"]))
    assert "Queued again" in page
    assert page.count("<tr data-attempt=") == 2
    assert '<span class="badge badge-succeeded">Succeeded</span>' in page
    ids = {hook.header("hook-delivery") for hook in receiver.hooks}
    assert ids == {delivery.pk}


def test_resend_failed_resends_one_subscriptions_failures_only(
    sub: Subscriber, web: Client, alice: Any, settings: Any, receiver: ListenerThread
) -> None:
    settings.THORN_RETRY = False
    other = Subscriber.objects.create(
        user=alice, event="article.*", url=receiver.url("/other")
    )
    receiver.route("/hook", Reply(status=503))
    receiver.route("/other", Reply(status=503))
    deliver(settings, alice)
    deliver(settings, alice)
    assert Delivery.objects.filter(status="failed").count() == 4
    page = text(web.get(f"{ROOT}{sub.uuid}/"))
    assert "Resend 2 failed" in page
    response = post(
        web,
        ROOT + "deliveries/resend-failed/",
        {"endpoint": str(sub.uuid), "next": f"{ROOT}{sub.uuid}/"},
    )
    assert response["Location"] == f"{ROOT}{sub.uuid}/"
    assert set(
        Delivery.objects.filter(subscriber=sub).values_list("status", flat=True)
    ) == {"pending"}
    assert set(
        Delivery.objects.filter(subscriber=other).values_list("status", flat=True)
    ) == {"failed"}
    assert "Queued 2 failed deliveries again." in text(web.get(response["Location"]))
    response = post(web, ROOT + "deliveries/resend-failed/", {"next": "https://evil/"})
    assert response["Location"] == ROOT + "deliveries/"  # not elsewhere
    assert not Delivery.objects.filter(status="failed").exists()


def test_the_delivery_list_filters_and_pages_newest_first(
    sub: Subscriber, web: Client
) -> None:
    message = Message.objects.create(id=new_id(), event="article.created", data="{}")
    ids = sorted(new_id() for _ in range(30))  # oldest first
    for index, delivery_id in enumerate(ids):
        stored_delivery(
            message,
            sub,
            id=delivery_id,
            status="failed" if index % 3 == 0 else "succeeded",
        )
    first = text(web.get(ROOT + "deliveries/"))
    shown = re.findall(r'data-delivery="([^"]+)"', first)
    assert shown == list(reversed(ids))[:25]
    assert 'data-refresh="5"' in first
    older = re.search(r'<a href="\?([^"]*before=[^"]*)">Older</a>', first)
    assert older
    second = text(web.get(ROOT + "deliveries/?" + older.group(1)))
    assert re.findall(r'data-delivery="([^"]+)"', second) == list(reversed(ids))[25:]
    assert "data-refresh" not in second
    failed = text(web.get(ROOT + "deliveries/", {"status": "failed"}))
    assert len(re.findall(r'data-status="failed"', failed)) == 10
    assert 'data-status="succeeded"' not in failed
    odd = text(web.get(ROOT + "deliveries/", {"status": "lost"}))
    assert "There is no status 'lost'" in odd
    assert web.get(ROOT + "deliveries/", {"before": "x' OR 1"}).status_code == 404
    assert web.get(ROOT + "deliveries/", {"endpoint": "nope"}).status_code == 404


# -- the chart ------------------------------------------------------------------------


def test_the_chart_counts_tries_and_failures_per_hour_and_day(
    sub: Subscriber, web: Client
) -> None:
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    message = Message.objects.create(id=new_id(), event="article.created", data="{}")
    delivery = stored_delivery(message, sub)
    tries = [(1, 200), (1, 500), (1, None), (3, 204), (30, 200), (24 * 10, 500)]
    for number, (hours_ago, code) in enumerate(tries, start=1):
        Attempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=now - datetime.timedelta(hours=hours_ago),
            duration_ms=1.0,
            status_code=code,
        )
    hourly = attempt_chart(sub, "hours", now=now)
    assert len(hourly.bars) == 48
    assert (hourly.total, hourly.failed, hourly.peak) == (5, 2, 3)
    by_start = {bar.start: bar for bar in hourly.bars}
    hour = now.replace(minute=0) - datetime.timedelta(hours=1)
    assert (by_start[hour].total, by_start[hour].failed) == (3, 2)
    assert by_start[hour].height_total == 180.0  # the peak fills the plot
    assert by_start[hour].height_failed == 120.0
    daily = attempt_chart(sub, "days", now=now)
    assert (len(daily.bars), daily.total, daily.failed) == (30, 6, 3)
    with pytest.raises(ValueError, match="period must be one of"):
        attempt_chart(sub, "weeks")
    page = text(web.get(f"{ROOT}{sub.uuid}/"))
    assert '<svg class="chart-svg"' in page
    assert 'role="img"' in page
    assert "5 tries in the last 48 hours, 2 of them failed." in page
    row = hour.strftime("%Y-%m-%d %H:%M")
    assert f'<tr><th scope="row">{row}</th><td>3</td><td>2</td></tr>' in page
    page = text(web.get(f"{ROOT}{sub.uuid}/", {"period": "days"}))
    assert "6 tries in the last 30 days, 3 of them failed." in page
    rates = success_rates([sub], now=now)
    assert (rates[sub.pk].total, rates[sub.pk].succeeded) == (5, 3)


def test_the_verify_page_says_when_it_has_no_code_for_a_digest(
    web: Client, alice: Any
) -> None:
    sub = Subscriber.objects.create(
        user=alice, event="a.b", url="https://e.com/", hmac_digest="sha3_256"
    )
    page = text(web.get(f"{ROOT}{sub.uuid}/verify/"))
    assert "no verification snippets for the digest 'sha3_256'" in page
    assert 'data-snippet="python"' not in page


# -- the assets ----------------------------------------------------------------------


def test_the_script_and_style_sheet_are_served_with_a_version(web: Client) -> None:
    page = web.get(ROOT).content.decode()
    found = re.search(r'<script src="([^"?]+)\?v=([0-9a-f]{16})" defer>', page)
    assert found
    script = Client().get(found.group(1))  # public: no login needed
    assert script.status_code == 200
    assert script["Content-Type"].startswith("text/javascript")
    assert b"data-portal-reveal" in script.content
    again = Client().get(found.group(1), HTTP_IF_NONE_MATCH=script["ETag"])
    assert again.status_code == 304
    assert (
        Client().get(ROOT + "assets/portal.css")["Content-Type"].startswith("text/css")
    )
    assert Client().get(ROOT + "assets/settings.py").status_code == 404


# -- verification snippets -----------------------------------------------------------


def snippet_code(client: Client, sub: Subscriber, key: str) -> str:
    page = client.get(f"{ROOT}{sub.uuid}/verify/").content.decode()
    found = re.search(
        rf'<code id="code-{key}" data-snippet="{key}">(.*?)</code>', page, re.S
    )
    assert found, key
    return html.unescape(found.group(1))


def signed_hook(web: Client, sub: Subscriber, receiver: ListenerThread) -> Hook:
    """A real webhook, signed by Thorn, as the receiver got it."""
    before = len(receiver.hooks)
    assert "Test event delivered" in text(post(web, f"{ROOT}{sub.uuid}/test/"))
    return receiver.wait_for(before + 1)[-1]


def stale_headers(hook: Hook, secret: str) -> dict[str, str]:
    """The hook's headers re-signed correctly, ten minutes ago."""
    old = int(time.time()) - 600
    headers = dict(hook.headers)
    headers["webhook-timestamp"] = str(old)
    headers["webhook-signature"] = sign_standard(
        headers["webhook-id"], old, hook.body, [secret]
    )
    return headers


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
def test_the_python_snippet_verifies_a_real_signed_delivery(
    digest: str, web: Client, alice: Any, receiver: ListenerThread
) -> None:
    secret = random_secret()
    sub = Subscriber.objects.create(
        user=alice,
        event="article.*",
        url=receiver.url("/hook"),
        hmac_secret=secret,
        hmac_digest=digest,
    )
    namespace: dict[str, Any] = {}
    exec(snippet_code(web, sub, "python"), namespace)  # noqa: S102
    hook_hmac = namespace["verify_hook_hmac"]
    standard = namespace["verify_standard_webhook"]
    hook = signed_hook(web, sub, receiver)
    # Title-case names, as a framework hands them over.
    headers = {name.title(): value for name, value in hook.headers.items()}
    assert hook_hmac(hook.body, headers, secret)
    assert standard(hook.body, headers, secret)
    assert standard(hook.body, headers, standard_webhooks_secret(secret))
    assert not hook_hmac(hook.body + b" ", headers, secret)
    assert not standard(hook.body + b" ", headers, secret)
    assert not hook_hmac(hook.body, headers, secret + "x")
    assert not standard(hook.body, headers, secret + "x")
    assert not standard(hook.body, stale_headers(hook, secret), secret)
    assert not hook_hmac(hook.body, {}, secret)
    assert not standard(hook.body, {}, secret)


def test_the_python_snippet_accepts_either_secret_while_a_rotation_overlaps(
    sub: Subscriber, web: Client, receiver: ListenerThread
) -> None:
    post(web, f"{ROOT}{sub.uuid}/rotate/")
    sub.refresh_from_db()
    namespace: dict[str, Any] = {}
    exec(snippet_code(web, sub, "python"), namespace)  # noqa: S102
    hook = signed_hook(web, sub, receiver)
    assert len(hook.headers["webhook-signature"].split()) == 2
    standard = namespace["verify_standard_webhook"]
    assert standard(hook.body, hook.headers, sub.hmac_secret)
    assert standard(hook.body, hook.headers, SECRET)
    assert namespace["verify_hook_hmac"](hook.body, hook.headers, sub.hmac_secret)
    assert not namespace["verify_hook_hmac"](hook.body, hook.headers, SECRET)


_HARNESSES = {
    "node": (
        "webhooks.js",
        "harness.js",
        """\
const { verifyHookHmac, verifyStandardWebhook } = require("./webhooks.js");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const body = Buffer.from(input.body, "base64");
const tampered = Buffer.concat([body, Buffer.from(" ")]);
const h = input.headers;
console.log(JSON.stringify([
  verifyHookHmac(body, h, input.secret),
  verifyStandardWebhook(body, h, input.secret),
  verifyStandardWebhook(body, h, input.standard_secret),
  verifyHookHmac(tampered, h, input.secret),
  verifyStandardWebhook(tampered, h, input.secret),
  verifyHookHmac(body, h, input.secret + "x"),
  verifyStandardWebhook(body, h, input.secret + "x"),
  verifyStandardWebhook(body, input.stale, input.secret),
]));
""",
        ["node", "harness.js"],
    ),
    "ruby": (
        "webhooks.rb",
        "harness.rb",
        """\
require "json"
require_relative "webhooks"
input = JSON.parse($stdin.read)
body = input["body"].unpack1("m")
tampered = body + " "
# Rack's env names: HTTP_HOOK_HMAC...
rack = ->(h) { h.to_h { |k, v| ["HTTP_" + k.upcase.tr("-", "_"), v] } }
h = rack.call(input["headers"])
s = input["secret"]
puts JSON.generate([
  verify_hook_hmac(body, h, s),
  verify_standard_webhook(body, h, s),
  verify_standard_webhook(body, h, input["standard_secret"]),
  verify_hook_hmac(tampered, h, s),
  verify_standard_webhook(tampered, h, s),
  verify_hook_hmac(body, h, s + "x"),
  verify_standard_webhook(body, h, s + "x"),
  verify_standard_webhook(body, rack.call(input["stale"]), s),
])
""",
        ["ruby", "harness.rb"],
    ),
    "php": (
        "webhooks.php",
        "harness.php",
        """\
<?php
require __DIR__ . '/webhooks.php';
$input = json_decode(file_get_contents('php://stdin'), true);
$body = base64_decode($input['body']);
$tampered = $body . ' ';
// getallheaders() style names: Hook-Hmac, Webhook-Id...
$title = function (array $h): array {
    $out = [];
    foreach ($h as $k => $v) {
        $out[ucwords($k, '-')] = $v;
    }
    return $out;
};
$h = $title($input['headers']);
$s = $input['secret'];
echo json_encode([
    verify_hook_hmac($body, $h, $s),
    verify_standard_webhook($body, $h, $s),
    verify_standard_webhook($body, $h, $input['standard_secret']),
    verify_hook_hmac($tampered, $h, $s),
    verify_standard_webhook($tampered, $h, $s),
    verify_hook_hmac($body, $h, $s . 'x'),
    verify_standard_webhook($body, $h, $s . 'x'),
    verify_standard_webhook($body, $title($input['stale']), $s),
]), "\\n";
""",
        ["php", "harness.php"],
    ),
    "go": (
        "webhooks.go",
        "main.go",
        """\
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

type input struct {
	Body           string            `json:"body"`
	Headers        map[string]string `json:"headers"`
	Stale          map[string]string `json:"stale"`
	Secret         string            `json:"secret"`
	StandardSecret string            `json:"standard_secret"`
}

func header(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	body, _ := base64.StdEncoding.DecodeString(in.Body)
	tampered := append(append([]byte{}, body...), ' ')
	h := header(in.Headers)
	out, _ := json.Marshal([]bool{
		VerifyHookHMAC(body, h, in.Secret),
		VerifyStandardWebhook(body, h, in.Secret),
		VerifyStandardWebhook(body, h, in.StandardSecret),
		VerifyHookHMAC(tampered, h, in.Secret),
		VerifyStandardWebhook(tampered, h, in.Secret),
		VerifyHookHMAC(body, h, in.Secret+"x"),
		VerifyStandardWebhook(body, h, in.Secret+"x"),
		VerifyStandardWebhook(body, header(in.Stale), in.Secret),
	})
	fmt.Println(string(out))
}
""",
        ["go", "run", "main.go", "webhooks.go"],
    ),
}


@pytest.mark.parametrize("language", ["node", "ruby", "php", "go"])
def test_the_other_snippets_verify_a_real_signed_delivery(
    language: str,
    web: Client,
    alice: Any,
    receiver: ListenerThread,
    tmp_path: Path,
) -> None:
    program = _HARNESSES[language][3][0]
    if shutil.which(program) is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{program} is not installed (.ci/run installs it)")
        pytest.skip(f"{program} is not installed")
    secret = random_secret()
    sub = Subscriber.objects.create(
        user=alice,
        event="article.*",
        url=receiver.url("/hook"),
        hmac_secret=secret,
        hmac_digest="sha512",
    )
    filename, harness_name, harness, command = _HARNESSES[language]
    code = snippet_code(web, sub, language)
    if language == "go":
        code = code.replace("package webhooks", "package main", 1)
        (tmp_path / "go.mod").write_text("module harness\n\ngo 1.21\n")
    (tmp_path / filename).write_text(code)
    (tmp_path / harness_name).write_text(harness)
    hook = signed_hook(web, sub, receiver)
    data = {
        "body": base64.b64encode(hook.body).decode(),
        "headers": hook.headers,
        "stale": stale_headers(hook, secret),
        "secret": secret,
        "standard_secret": standard_webhooks_secret(secret),
    }
    result = subprocess.run(
        command,
        input=json.dumps(data),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == [True, True, True, False, False, False, False, False]
