"""The subscriber admin: pages never show a secret; actions disable, enable, rotate."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from thorn.django.models import Subscriber

pytestmark = pytest.mark.django_db

LIST = "admin:thorn_subscriber_changelist"


@pytest.fixture
def subscribers() -> list[Subscriber]:
    return [
        Subscriber.objects.create(event="user.created", url="https://example.com/a"),
        Subscriber.objects.create(
            event="article.*",
            url="https://ada:pa55word@example.com/b",
            content_type="application/x-www-form-urlencoded",
        ),
        Subscriber.objects.create(
            event="*", url="https://example.com/c", active=False, hmac_digest="sha512"
        ),
    ]


def _no_secret_in(text: str, subscribers: list[Subscriber]) -> None:
    for sub in subscribers:
        # As written and as HTML escapes it (secrets hold punctuation); not
        # even the first half, in case a page shortened it.
        for part in (sub.hmac_secret, sub.hmac_secret[:32]):
            assert part not in text
            assert escape(part) not in text
    assert "pa55word" not in text


def test_the_list_page_shows_subscribers_but_no_secret(
    admin_client: Client, subscribers: list[Subscriber]
) -> None:
    response = admin_client.get(reverse(LIST))
    assert response.status_code == 200
    text = response.content.decode()
    for sub in subscribers:
        assert sub.event in text
    assert "https://ada:***@example.com/b" in text
    _no_secret_in(text, subscribers)


@pytest.mark.parametrize(
    "query",
    [
        "?q=example",
        "?active__exact=1",
        "?content_type__exact=application%2Fjson",
        "?hmac_digest__exact=sha512",
        "?event=user.created",
    ],
)
def test_filtered_and_searched_lists_show_no_secret(
    admin_client: Client, subscribers: list[Subscriber], query: str
) -> None:
    response = admin_client.get(reverse(LIST) + query)
    assert response.status_code == 200
    _no_secret_in(response.content.decode(), subscribers)


def test_the_list_filters_work(
    admin_client: Client, subscribers: list[Subscriber]
) -> None:
    response = admin_client.get(reverse(LIST) + "?active__exact=0")
    assert list(response.context["cl"].result_list) == [subscribers[2]]
    response = admin_client.get(reverse(LIST) + "?q=article")
    assert list(response.context["cl"].result_list) == [subscribers[1]]


def test_the_change_page_masks_the_secret(
    admin_client: Client, subscribers: list[Subscriber]
) -> None:
    sub = subscribers[0]
    # Punctuation that HTML escapes, where the page shows the last characters.
    sub.hmac_secret = "s" * 60 + "<&\"'"
    sub.save()
    url = reverse("admin:thorn_subscriber_change", args=[sub.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    text = response.content.decode()
    _no_secret_in(text, subscribers)
    assert escape("••••••••" + sub.hmac_secret[-4:]) in text
    assert 'name="hmac_secret"' not in text


def test_saving_the_change_form_keeps_the_secret(
    admin_client: Client, subscribers: list[Subscriber]
) -> None:
    sub = subscribers[0]
    url = reverse("admin:thorn_subscriber_change", args=[sub.pk])
    response = admin_client.post(
        url,
        {
            "event": "user.*",
            "url": "https://example.com/new",
            "content_type": "application/json",
            "hmac_digest": "sha256",
            "active": "on",
            "disabled_reason": "",
            "payload_filters": "{}",
            "user": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    fresh = Subscriber.objects.get(pk=sub.pk)
    assert (fresh.event, fresh.url) == ("user.*", "https://example.com/new")
    assert fresh.hmac_secret == sub.hmac_secret


def test_the_add_form_makes_a_subscriber_with_a_new_secret(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        reverse("admin:thorn_subscriber_add"),
        {
            "event": "order.*",
            "url": "https://example.com/orders",
            "content_type": "application/json",
            "hmac_digest": "sha256",
            "active": "on",
            "payload_filters": '{"data.state": "PAID"}',
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    sub = Subscriber.objects.get(event="order.*")
    assert len(sub.hmac_secret) == 64
    assert sub.payload_filters == {"data.state": "PAID"}


def test_the_add_form_refuses_invalid_patterns_and_filters(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        reverse("admin:thorn_subscriber_add"),
        {
            "event": "order..paid",
            "url": "https://example.com/orders",
            "content_type": "application/json",
            "hmac_digest": "sha256",
            "payload_filters": '{"x": {"match": "nope"}}',
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"event", "payload_filters"}
    assert not Subscriber.objects.exists()


def _act(client: Client, action: str, subscribers: list[Subscriber]) -> Any:
    return client.post(
        reverse(LIST),
        {"action": action, "_selected_action": [s.pk for s in subscribers]},
        follow=True,
    )


def test_the_disable_action_disables_with_a_reason(
    admin_client: Client, subscribers: list[Subscriber]
) -> None:
    response = _act(admin_client, "disable_subscribers", subscribers[:2])
    assert response.status_code == 200
    assert "Disabled 2 subscribers." in response.content.decode()
    for sub in subscribers[:2]:
        sub.refresh_from_db()
        assert sub.active is False
        assert "admin" in sub.disabled_reason
        assert sub.disabled_at is not None


def test_the_enable_action_clears_the_reason(
    admin_client: Client, subscribers: list[Subscriber]
) -> None:
    subscribers[2].disable("410 Gone")
    _act(admin_client, "enable_subscribers", [subscribers[2]])
    subscribers[2].refresh_from_db()
    assert subscribers[2].active is True
    assert subscribers[2].disabled_reason == ""
    assert subscribers[2].disabled_at is None


def test_the_rotate_action_gives_each_subscriber_its_own_new_secret(
    admin_client: Client, subscribers: list[Subscriber]
) -> None:
    old = {s.pk: s.hmac_secret for s in subscribers}
    response = _act(admin_client, "rotate_secrets", subscribers)
    text = response.content.decode()
    assert "new secrets" in text
    new = {s.pk: s.hmac_secret for s in Subscriber.objects.all()}
    assert all(new[pk] != old[pk] for pk in old)
    assert len(set(new.values())) == 3
    assert all(len(secret) == 64 for secret in new.values())
    # The old secrets keep signing for the overlap.
    assert {s.pk: s.previous_secret for s in Subscriber.objects.all()} == old
    assert all(s.extra_secrets for s in Subscriber.objects.all())
    _no_secret_in(text, list(Subscriber.objects.all()))


def test_staff_without_change_permission_cannot_run_the_actions(
    client: Client, django_user_model: Any, subscribers: list[Subscriber]
) -> None:
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("viewer", password="x")
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    client.force_login(staff)
    response = client.get(reverse(LIST))
    assert response.status_code == 200
    _no_secret_in(response.content.decode(), subscribers)
    _act(client, "disable_subscribers", subscribers)
    assert Subscriber.objects.filter(active=True).count() == 2
