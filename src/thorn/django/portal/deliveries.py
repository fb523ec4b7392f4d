"""The portal's delivery pages: the list, one delivery's tries, and resending.

Resending reuses the outbox's replay (``DjangoOutboxStore.replay``), as
``manage.py thorn_replay`` and the admin do: the delivery keeps its id, its
count of tries starts again, and the attempt log keeps every try.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from ..models import Delivery, DeliveryStatus, Message
from ..store import DjangoOutboxStore
from .access import (
    SECRET_COLUMNS,
    notify,
    own_deliveries,
    own_delivery,
    own_subscriber,
    own_subscribers,
    owner,
    portal_view,
    safe_next,
)
from .rendering import portal_url, render_page

__all__ = ["delivery_detail", "delivery_list", "resend", "resend_failed"]

logger = logging.getLogger(__name__)

#: Deliveries per page of the list.
PAGE_SIZE = 25
#: How much of a payload the delivery page shows, in characters.
PAYLOAD_PREVIEW = 4000
#: Deliveries replayed per statement by "resend failed".
REPLAY_CHUNK = 500
#: Seconds between refreshes of the first page of the list (by portal.js).
REFRESH_SECONDS = 5
_DELIVERY_ID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def _endpoint(request: HttpRequest) -> Any:
    """The subscription the list is narrowed to (``?endpoint=<uuid>``), or None."""
    value = request.GET.get("endpoint") or request.POST.get("endpoint") or ""
    if not value:
        return None
    try:
        key = UUID(value)
    except ValueError:
        raise Http404("no such subscription") from None
    return own_subscriber(request, key)


@portal_view
@require_safe
def delivery_list(request: HttpRequest) -> HttpResponse:
    """The user's deliveries, newest first, by subscription and status."""
    query = own_deliveries(request)
    endpoint = _endpoint(request)
    if endpoint is not None:
        query = query.filter(subscriber=endpoint)
    status = request.GET.get("status", "")
    if status and status not in DeliveryStatus.values:
        notify(
            request,
            messages.WARNING,
            f"There is no status {status!r}; showing every status.",
        )
        status = ""
    if status:
        query = query.filter(status=status)
    before = request.GET.get("before", "")
    if before and not _DELIVERY_ID.match(before):
        raise Http404("no such page")
    if before:
        query = query.filter(id__lt=before)
    rows = list(query[: PAGE_SIZE + 1])
    params = request.GET.copy()
    params.pop("before", None)
    newest_query = params.urlencode()
    older_query = None
    if len(rows) > PAGE_SIZE:
        params["before"] = rows[PAGE_SIZE - 1].id
        older_query = params.urlencode()
    failed = own_deliveries(request).filter(status=DeliveryStatus.FAILED)
    if endpoint is not None:
        failed = failed.filter(subscriber=endpoint)
    return render_page(
        request,
        "thorn/portal/delivery_list.html",
        {
            "deliveries": rows[:PAGE_SIZE],
            "endpoint": endpoint,
            "endpoints": own_subscribers(request).defer(*SECRET_COLUMNS),
            "status": status,
            "statuses": DeliveryStatus.choices,
            "before": before,
            "newest_query": newest_query,
            "older_query": older_query,
            "failed_count": failed.count(),
            "refresh": REFRESH_SECONDS if not before else None,
            "section": "deliveries",
        },
    )


def _payload(message: Message | None) -> str:
    if message is None:
        return ""
    text = message.data or ""
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    if len(text) > PAYLOAD_PREVIEW:
        return text[:PAYLOAD_PREVIEW] + " …"
    return text


@portal_view
@require_safe
def delivery_detail(request: HttpRequest, delivery_id: UUID) -> HttpResponse:
    """One delivery: its message, state, and every try with its answer."""
    delivery = own_delivery(request, delivery_id)
    message = Message.objects.filter(pk=delivery.message_id).first()
    attempts = [
        {
            "attempt": attempt,
            "answer": bytes(attempt.response_excerpt or b"").decode("utf-8", "replace"),
        }
        for attempt in delivery.attempt_log.order_by("number")
    ]
    return render_page(
        request,
        "thorn/portal/delivery_detail.html",
        {
            "delivery": delivery,
            "message": message,
            "payload": _payload(message),
            "attempts": attempts,
            "section": "deliveries",
        },
    )


@portal_view
@require_POST
def resend(request: HttpRequest, delivery_id: UUID) -> HttpResponse:
    """Queue one finished delivery again, now."""
    delivery = own_delivery(request, delivery_id)
    count = DjangoOutboxStore().replay(
        ids=[delivery.pk], status="all", now=timezone.now()
    )
    if count:
        logger.info(
            "delivery %s queued again in the portal by user %s",
            delivery.pk,
            request.user.pk,
        )
        text = "Queued again: it is sent within moments."
        if delivery.subscriber is not None and not delivery.subscriber.active:
            text = "Queued again: it is sent once you enable its subscription."
        notify(request, messages.SUCCESS, text)
    else:
        notify(
            request,
            messages.INFO,
            "It is still pending: it is tried again on its own.",
        )
    default = portal_url(request, "delivery", delivery_id=delivery.pk)
    return redirect(safe_next(request, default))


def _replay_all(ids: Any) -> int:
    """Replay the failed deliveries ``ids`` selects, a chunk at a time."""
    store = DjangoOutboxStore()
    total = 0
    while True:
        chunk = list(ids[:REPLAY_CHUNK])
        if not chunk:
            return total
        done = store.replay(ids=chunk, status="failed", now=timezone.now())
        total += done
        if not done:  # changed meanwhile (another resend): stop here
            return total


@portal_view
@require_POST
def resend_failed(request: HttpRequest) -> HttpResponse:
    """Queue every failed delivery of one subscription (or of all) again."""
    endpoint = _endpoint(request)
    failed = Delivery.objects.filter(
        subscriber__user=owner(request), status=DeliveryStatus.FAILED
    )
    if endpoint is not None:
        failed = failed.filter(subscriber=endpoint)
    count = _replay_all(failed.order_by("pk").values_list("pk", flat=True))
    logger.info(
        "%d failed deliveries queued again in the portal by user %s",
        count,
        request.user.pk,
    )
    if count:
        notify(
            request,
            messages.SUCCESS,
            f"Queued {count} failed "
            f"{'delivery' if count == 1 else 'deliveries'} again.",
        )
    else:
        notify(request, messages.INFO, "No failed deliveries to resend.")
    default = portal_url(request, "deliveries")
    if endpoint is not None:
        default += f"?endpoint={endpoint.uuid}"
    return redirect(safe_next(request, default))
