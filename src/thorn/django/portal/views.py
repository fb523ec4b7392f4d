"""The portal's subscription pages: list, create, show, edit, and act on one.

Everything essential is a plain form: a POST with its CSRF token, then a
redirect with a message, or a page rendered in answer. ``portal.js`` only
makes some of it quicker (reveal in place, copy, confirm, add filter rows).
Pages showing a secret are answered to a POST, never cached, and the secret
is never logged.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)

from ...exceptions import ImproperlyConfigured
from ...matchers import PayloadFilter
from ...signing import standard_webhooks_secret
from ..models import DeliveryStatus, Subscriber
from .access import (
    SECRET_COLUMNS,
    notify,
    own_deliveries,
    own_subscriber,
    own_subscribers,
    owner,
    portal_view,
)
from .charts import PERIODS, attempt_chart, success_rates
from .forms import FilterFormSet, SubscriptionForm, filter_rows
from .rendering import portal_url, render_page
from .sending import RATE_LIMIT, TestEventResult, allow_test_event, send_test_event
from .snippets import snippets

__all__ = [
    "create",
    "delete",
    "detail",
    "disable",
    "edit",
    "enable",
    "index",
    "reveal",
    "rotate",
    "test_event",
    "verify",
]

logger = logging.getLogger(__name__)

#: Why a subscription is off when its owner turned it off here.
DISABLED_REASON = "turned off by its owner in the webhooks portal"
#: How many deliveries the subscription page lists.
RECENT_DELIVERIES = 10
#: How the subscription page reads each matcher of a payload filter.
MATCH_LABELS = {
    "is": "is",
    "startswith": "starts with",
    "endswith": "ends with",
    "contains": "contains",
    "like": "matches",
    "any": "is anything",
}
#: Characters of the secret shown (masked) on the subscription page.
SHOWN_SECRET_CHARS = 4


def _masked(secret: str) -> str:
    if not secret:
        return ""
    if len(secret) <= SHOWN_SECRET_CHARS * 4:
        return "•" * 8
    return "•" * 8 + secret[-SHOWN_SECRET_CHARS:]


@sensitive_variables("secret")
def _standard_form(secret: str) -> str | None:
    """The ``whsec_`` form of a secret, for Standard Webhooks libraries."""
    try:
        return standard_webhooks_secret(secret) if secret else None
    except ImproperlyConfigured:
        return None


def _filters_shown(subscriber: Subscriber) -> list[dict[str, str]]:
    rows = filter_rows(subscriber.payload_filters)
    return [
        {**row, "label": MATCH_LABELS.get(row["match"], row["match"])} for row in rows
    ]


def _filters_broken(subscriber: Subscriber) -> bool:
    try:
        PayloadFilter.from_json(subscriber.payload_filters or None)
    except ValueError:
        return True
    return False


def _valid(form: SubscriptionForm, filters: Any) -> bool:
    form_ok = form.is_valid()
    filters_ok = filters.is_valid()
    return form_ok and filters_ok


# -- the list -------------------------------------------------------------------------


@portal_view
@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """The user's subscriptions: pattern, URL, state, recent success rate."""
    subscribers = list(own_subscribers(request).defer(*SECRET_COLUMNS))
    rates = success_rates(subscribers)
    rows = [(sub, rates.get(sub.pk)) for sub in subscribers]
    return render_page(
        request,
        "thorn/portal/subscription_list.html",
        {"rows": rows, "section": "subscriptions"},
    )


# -- create and edit ------------------------------------------------------------------


@portal_view
@require_http_methods(["GET", "HEAD", "POST"])
def create(request: HttpRequest) -> HttpResponse:
    """A new subscription of the user's."""
    if request.method == "POST":
        form = SubscriptionForm(request.POST)
        filters = FilterFormSet(request.POST, prefix="filters")
        if _valid(form, filters):
            subscriber = Subscriber(user=owner(request))
            form.apply(subscriber, filters.payload_filters)
            subscriber.save()
            logger.info(
                "subscription %s to %r created in the portal by user %s",
                subscriber.uuid,
                subscriber.event,
                request.user.pk,
            )
            notify(
                request,
                messages.SUCCESS,
                f"Subscribed to {subscriber.event}. Reveal its secret below to "
                "verify the signatures of its webhooks.",
            )
            return redirect(portal_url(request, "detail", uuid=subscriber.uuid))
    else:
        form = SubscriptionForm()
        filters = FilterFormSet(prefix="filters")
    return render_page(
        request,
        "thorn/portal/subscription_form.html",
        {"form": form, "filters": filters, "section": "subscriptions"},
    )


@portal_view
@require_http_methods(["GET", "HEAD", "POST"])
def edit(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Change a subscription's event, URL, content type, digest and filters."""
    subscriber = own_subscriber(request, uuid)
    if request.method == "POST":
        form = SubscriptionForm(request.POST)
        filters = FilterFormSet(request.POST, prefix="filters")
        if _valid(form, filters):
            form.apply(subscriber, filters.payload_filters)
            subscriber.save()
            logger.info(
                "subscription %s changed in the portal by user %s",
                subscriber.uuid,
                request.user.pk,
            )
            notify(request, messages.SUCCESS, "Saved.")
            return redirect(portal_url(request, "detail", uuid=subscriber.uuid))
    else:
        form = SubscriptionForm(initial=SubscriptionForm.initial_of(subscriber))
        filters = FilterFormSet(
            prefix="filters", initial=filter_rows(subscriber.payload_filters)
        )
    return render_page(
        request,
        "thorn/portal/subscription_form.html",
        {
            "form": form,
            "filters": filters,
            "subscriber": subscriber,
            "section": "subscriptions",
        },
    )


# -- one subscription -----------------------------------------------------------------


@sensitive_variables("secret")
def _detail_page(
    request: HttpRequest,
    subscriber: Subscriber,
    *,
    revealed: bool = False,
    rotated: bool = False,
    test_result: TestEventResult | None = None,
    status: int = 200,
) -> HttpResponse:
    period = request.GET.get("period", "hours")
    if period not in PERIODS:
        period = "hours"
    deliveries = own_deliveries(request).filter(subscriber=subscriber)
    secret = subscriber.hmac_secret or ""
    overlap = bool(subscriber.extra_secrets)
    context: dict[str, Any] = {
        "subscriber": subscriber,
        "section": "subscriptions",
        "masked_secret": _masked(secret),
        "has_secret": bool(secret),
        "revealed": revealed and bool(secret),
        "rotated": rotated,
        "overlap_until": subscriber.previous_secret_until if overlap else None,
        "filters": _filters_shown(subscriber),
        "filters_broken": _filters_broken(subscriber),
        "chart": attempt_chart(subscriber, period),
        "periods": [(name, spec.title) for name, spec in PERIODS.items()],
        "recent": list(deliveries[:RECENT_DELIVERIES]),
        "failed_count": deliveries.filter(status=DeliveryStatus.FAILED).count(),
        "test_result": test_result,
        "rate_limit": RATE_LIMIT,
    }
    if revealed and secret:
        context["secret"] = secret
        context["standard_secret"] = _standard_form(secret)
    response = render_page(
        request, "thorn/portal/subscription_detail.html", context, status=status
    )
    return response


@portal_view
@require_safe
def detail(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """A subscription: settings, state, secret (hidden), chart, deliveries."""
    return _detail_page(request, own_subscriber(request, uuid))


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@portal_view
@require_POST
@sensitive_variables("secret")
def reveal(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Show the secret: the page again with it, or JSON for ``portal.js``."""
    subscriber = own_subscriber(request, uuid)
    if _wants_json(request):
        secret = subscriber.hmac_secret or ""
        return JsonResponse(
            {"secret": secret, "standard_secret": _standard_form(secret)}
        )
    return _detail_page(request, subscriber, revealed=True)


@portal_view
@require_POST
def rotate(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """A new secret, shown in the answer; the old one keeps signing a while."""
    subscriber = own_subscriber(request, uuid)
    subscriber.rotate_secret()
    logger.info(
        "secret of subscription %s rotated in the portal by user %s",
        subscriber.uuid,
        request.user.pk,
    )
    if subscriber.extra_secrets and subscriber.previous_secret_until is not None:
        until = subscriber.previous_secret_until.astimezone(datetime.UTC).strftime(
            "%Y-%m-%d %H:%M"
        )
        text = (
            "New secret below. The previous one keeps signing webhook-signature "
            f"until {until} UTC; Hook-HMAC uses the new one from now on."
        )
    else:
        text = "New secret below. The previous one no longer signs anything."
    notify(request, messages.SUCCESS, text)
    return _detail_page(request, subscriber, revealed=True, rotated=True)


@portal_view
@require_POST
def test_event(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Send a signed test event to the endpoint now and show the answer."""
    subscriber = own_subscriber(request, uuid)
    if not allow_test_event(request.user.pk):
        notify(
            request,
            messages.ERROR,
            f"You sent {RATE_LIMIT} test events in the last minute: wait a "
            "minute, then try again.",
        )
        return _detail_page(request, subscriber, status=429)
    result = send_test_event(subscriber)
    return _detail_page(request, subscriber, test_result=result)


@portal_view
@require_POST
def disable(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Stop deliveries; pending ones wait until it is enabled again."""
    subscriber = own_subscriber(request, uuid)
    if subscriber.active:
        subscriber.disable(DISABLED_REASON)
        notify(
            request,
            messages.SUCCESS,
            "Disabled: nothing is sent to it until you enable it again; "
            "webhooks due meanwhile wait.",
        )
    else:
        notify(request, messages.INFO, "It was already disabled.")
    return redirect(portal_url(request, "detail", uuid=subscriber.uuid))


@portal_view
@require_POST
def enable(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Deliver again, starting with what waited."""
    subscriber = own_subscriber(request, uuid)
    if subscriber.active:
        notify(request, messages.INFO, "It was already enabled.")
    else:
        subscriber.enable()
        notify(
            request,
            messages.SUCCESS,
            "Enabled: webhooks that waited are sent now.",
        )
    return redirect(portal_url(request, "detail", uuid=subscriber.uuid))


@portal_view
@require_http_methods(["GET", "HEAD", "POST"])
def delete(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Confirm, then delete: pending deliveries are cancelled, the log stays."""
    subscriber = own_subscriber(request, uuid)
    if request.method == "POST":
        event = subscriber.event
        subscriber.delete()
        logger.info(
            "subscription %s deleted in the portal by user %s", uuid, request.user.pk
        )
        notify(request, messages.SUCCESS, f"Deleted the subscription to {event}.")
        return redirect(portal_url(request, "index"))
    return render_page(
        request,
        "thorn/portal/subscription_confirm_delete.html",
        {"subscriber": subscriber, "section": "subscriptions"},
    )


@portal_view
@require_safe
def verify(request: HttpRequest, uuid: UUID) -> HttpResponse:
    """Code to check this subscription's signatures, in five languages."""
    subscriber = own_subscriber(request, uuid)
    try:
        code = snippets(subscriber.hmac_digest)
    except ValueError as exc:
        code = []
        notify(request, messages.WARNING, str(exc))
    chosen = request.GET.get("lang", "python")
    return render_page(
        request,
        "thorn/portal/verify.html",
        {
            "subscriber": subscriber,
            "snippets": code,
            "chosen": chosen,
            "section": "subscriptions",
        },
    )
