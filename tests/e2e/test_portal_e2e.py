"""The subscriber portal in real headless Chromium, on the running example project.

Each test signs in on a fresh tab and makes its own subscription; webhooks
are queued by real article changes (``manage.py shell``), delivered by the
real ``thorn_worker`` to a real receiver, and watched arriving in the page.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from thorn.receiver import verify_request

#: A running example project (the ``site`` fixture of conftest.py).
Site = Any

#: Seconds to wait for a webhook to be delivered and listed (a busy machine).
DELIVERY_DEADLINE = 60_000


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def sign_in(page: Any, site: Site, user: str) -> None:
    page.goto(site.url + "/webhooks/")
    assert "/accounts/login/" in page.url  # the portal asks for a login first
    page.locator("#id_username").fill(user)
    page.locator("#id_password").fill(site.passwords[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Subscriptions")).to_be_visible()
    assert page.url == site.url + "/webhooks/"


def subscribe(page: Any, site: Site, path: str) -> str:
    """A subscription to article.created at the receiver's ``path``; its URL."""
    page.goto(site.url + "/webhooks/new/")
    page.locator("#id_event").select_option("article.created")
    page.locator("#id_url").fill(site.receiver.url(path))
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_text("Subscribed to article.created")).to_be_visible()
    assert re.search(r"/webhooks/[0-9a-f-]{36}/$", page.url), page.url
    return str(page.url)


def shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_a_user_signs_in_and_creates_a_subscription(
    page: Any, site: Site, screenshots: Path
) -> None:
    page.goto(site.url + "/webhooks/")
    shot(page, screenshots, "01-sign-in")
    sign_in(page, site, "alice")
    page.get_by_role("link", name="New subscription").click()
    page.locator("#id_event").select_option("article.created")
    page.locator("#id_url").fill("ftp://hooks.example.com/in")
    # portal.js offers a third filter row; the first one is filled in.
    page.get_by_role("button", name="Add a filter").click()
    expect(page.locator("#id_filters-2-field")).to_be_focused()
    page.locator("#id_filters-0-field").fill("data.title")
    page.locator("#id_filters-0-match").select_option("startswith")
    page.locator("#id_filters-0-value").fill("The ")
    page.locator("#id_filters-1-field").fill("data.slug")
    page.locator("#id_filters-1-match").select_option("like")
    page.locator("#id_filters-1-value").fill("(unclosed")
    page.get_by_role("button", name="Subscribe").click()
    # Refused: each message beside its field, the summary focused.
    expect(page.locator("#id_url_error")).to_contain_text("ftp")
    expect(page.locator("#id_url")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_filters-1-value_error")).to_contain_text(
        "is not a valid regular expression"
    )
    expect(page.locator(".form-errors")).to_be_focused()
    shot(page, screenshots, "02-subscription-form-errors")
    page.locator("#id_url").fill(site.receiver.url("/ok"))
    page.locator("#id_filters-1-field").fill("")
    page.locator("#id_filters-1-value").fill("")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_text("Subscribed to article.created")).to_be_visible()
    expect(page.locator("dd", has_text="data.title")).to_contain_text("starts with")
    shot(page, screenshots, "03-subscription")
    page.get_by_role("link", name="Subscriptions", exact=True).first.click()
    row = page.locator("tbody tr", has_text=site.receiver.url("/ok"))
    expect(row.first).to_contain_text("Active")
    shot(page, screenshots, "04-subscriptions")


def test_a_delivery_arrives_in_the_list_and_verifies_with_the_secret(
    page: Any, site: Site, screenshots: Path
) -> None:
    sign_in(page, site, "alice")
    detail = subscribe(page, site, "/ok")
    page.get_by_role("button", name="Reveal the secret").click()
    secret_box = page.locator("#secret-value")
    expect(secret_box).not_to_contain_text("••••")
    secret = secret_box.text_content()
    assert secret
    assert len(secret) == 64
    page.get_by_role("link", name="All deliveries of this subscription").click()
    expect(page.get_by_text("No deliveries yet.")).to_be_visible()
    site.create_article("alice")
    # portal.js refreshes the list: no reload here.
    row = page.locator('tr[data-status="succeeded"]')
    expect(row.first).to_be_visible(timeout=DELIVERY_DEADLINE)
    expect(row.first).to_contain_text("article.created")
    shot(page, screenshots, "05-deliveries")
    row.first.get_by_role("link").first.click()
    attempt = page.locator('tr[data-attempt="1"]')
    expect(attempt).to_contain_text("200")
    expect(attempt).to_contain_text("received, thanks")
    expect(page.locator("pre.payload")).to_contain_text("The Mighty Bear")
    shot(page, screenshots, "06-delivery")
    delivery_id = page.locator("dt:has-text('Delivery id') + dd code").text_content()
    (hook,) = [
        h for h in site.receiver.hooks if h.header("hook-delivery") == delivery_id
    ]
    assert verify_request(hook.body, hook.headers, secret, require_standard=True)
    page.goto(detail)
    expect(page.locator("svg.chart-svg desc")).to_contain_text(
        "1 try in the last 48 hours, 0 of them failed"
    )
    shot(page, screenshots, "12-subscription-with-tries")


def test_a_failed_delivery_is_resent_and_then_succeeds(
    page: Any, site: Site, screenshots: Path
) -> None:
    sign_in(page, site, "alice")
    subscribe(page, site, "/flaky")
    page.get_by_role("link", name="All deliveries of this subscription").click()
    site.create_article("alice", title="A flaky receiver")
    failed = page.locator('tr[data-status="failed"]')
    expect(failed.first).to_be_visible(timeout=DELIVERY_DEADLINE)
    expect(failed.first).to_contain_text("500")
    failed.first.get_by_role("link").first.click()
    expect(page.locator('tr[data-attempt="1"]')).to_contain_text(
        "not now: database down"
    )
    page.get_by_role("button", name="Resend", exact=True).click()
    expect(page.get_by_text("Queued again")).to_be_visible()
    deadline = time.monotonic() + DELIVERY_DEADLINE / 1000
    while not page.locator(".page-head .badge-succeeded").count():
        assert time.monotonic() < deadline, "the resent delivery did not succeed"
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator('tr[data-attempt="2"]')).to_contain_text("ok now")
    shot(page, screenshots, "07-delivery-resent")


def test_rotating_a_secret_shows_the_new_one_once(
    page: Any, site: Site, screenshots: Path
) -> None:
    sign_in(page, site, "alice")
    detail = subscribe(page, site, "/ok")
    page.get_by_role("button", name="Reveal the secret").click()
    expect(page.locator("#standard-value")).to_contain_text("whsec_")
    old = page.locator("#secret-value").text_content()
    # Dismissed: nothing changes.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Rotate the secret").click()
    page.goto(detail)
    page.get_by_role("button", name="Reveal the secret").click()
    expect(page.locator("#secret-value")).to_have_text(old)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate the secret").click()
    expect(page.get_by_text("This is the new secret")).to_be_visible()
    expect(page.get_by_text("keeps signing webhook-signature until")).to_be_visible()
    new = page.locator("#secret-value").text_content()
    assert new
    assert new != old
    assert len(new) == 64
    shot(page, screenshots, "08-rotated-secret")
    page.goto(detail)
    assert new not in page.content()
    expect(page.get_by_text("also signs webhook-signature until")).to_be_visible()
    page.get_by_role("link", name="Verify signatures").click()
    expect(page.locator("#code-python")).to_contain_text("def verify_hook_hmac")
    shot(page, screenshots, "09-verify")


def test_another_users_pages_are_refused(
    page: Any, browser: Any, site: Site, screenshots: Path
) -> None:
    sign_in(page, site, "alice")
    detail = subscribe(page, site, "/ok")
    site.create_article("alice", title="Private to alice")
    page.goto(site.url + "/webhooks/deliveries/")
    link = page.locator("tbody tr a[href*='/deliveries/']").first
    expect(link).to_be_visible(timeout=DELIVERY_DEADLINE)
    delivery = site.url + str(link.get_attribute("href"))
    context = browser.new_context()
    try:
        bob = context.new_page()
        sign_in(bob, site, "bob")
        expect(bob.get_by_text("You have no subscriptions yet.")).to_be_visible()
        for url in [detail, detail + "edit/", detail + "verify/", delivery]:
            response = bob.goto(url)
            assert response is not None
            assert response.status == 404, url
        shot(bob, screenshots, "10-refused")
        bob.goto(site.url + "/webhooks/deliveries/")
        expect(bob.get_by_text("No deliveries yet.")).to_be_visible()
    finally:
        context.close()


def test_the_essentials_work_without_javascript(
    plain_page: Any, site: Site, screenshots: Path
) -> None:
    page = plain_page
    sign_in(page, site, "bob")
    detail = subscribe(page, site, "/ok")
    expect(page.get_by_role("button", name="Add a filter")).to_be_hidden()
    page.get_by_role("button", name="Reveal the secret").click()
    secret = page.locator("#secret-value").text_content()
    assert secret
    assert "•" not in secret
    assert len(secret) == 64
    page.goto(detail)
    page.get_by_role("button", name="Disable").click()  # no confirm without JS
    expect(page.get_by_text("Disabled: nothing is sent to it")).to_be_visible()
    expect(page.locator(".page-head .badge-disabled")).to_be_visible()
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_text("Enabled: webhooks that waited")).to_be_visible()
    page.get_by_role("button", name="Send a test event").click()
    expect(page.locator(".test-result")).to_contain_text("received, thanks")
    shot(page, screenshots, "11-no-javascript")
