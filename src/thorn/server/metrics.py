"""Prometheus metrics of ``manage.py serve``, in a registry of their own."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..engine.core import DeliveryEngine
from ..engine.store import AttemptResult, DeliveryTask

__all__ = ["CONTENT_TYPE_LATEST", "MeteredEngine", "RequestMeter", "ServeMetrics"]

T = TypeVar("T")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]


class ServeMetrics:
    """The metrics, each a ``thorn_*`` name, in :attr:`registry`."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "thorn_deliveries",
            "Tries of outbox deliveries, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "thorn_attempt_duration_seconds",
            "Seconds one try of one delivery took.",
            registry=registry,
        )
        self.backlog = Gauge(
            "thorn_backlog", "Deliveries due now, not claimed yet.", registry=registry
        )
        self.in_flight = Gauge(
            "thorn_in_flight", "Delivery requests on the wire now.", registry=registry
        )
        self.subscribers_disabled = Gauge(
            "thorn_subscribers_disabled",
            "Subscribers that are not active.",
            registry=registry,
        )
        self.http_requests = Counter(
            "thorn_http_requests",
            "Requests the application answered, by method and status.",
            ["method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "thorn_http_request_duration_seconds",
            "Seconds the application took to answer a request.",
            ["method"],
            registry=registry,
        )
        self.http_in_flight = Gauge(
            "thorn_http_requests_in_flight",
            "Requests the application is answering now.",
            registry=registry,
        )
        self.startup = Gauge(
            "thorn_startup_seconds",
            "Seconds from the start of the command to serving.",
            registry=registry,
        )
        # Each outcome's child, looked up once: labels() validates and
        # locks on every call, and this runs once per delivery.
        self._outcomes = {
            outcome: self.deliveries.labels(outcome=outcome)
            for outcome in ("succeeded", "retry", "failed", "gone")
        }

    def observe_attempt(self, outcome: str, duration: float) -> None:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self.deliveries.labels(outcome=outcome)
        child.inc()
        self.attempt_duration.observe(duration)

    def observe_request(self, method: str, status: int, duration: float) -> None:
        self.http_requests.labels(method=method, status=str(status)).inc()
        self.http_duration.labels(method=method).observe(duration)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class MeteredEngine(DeliveryEngine):
    """A delivery engine that counts its tries in :class:`ServeMetrics`."""

    def __init__(self, *args: Any, metrics: ServeMetrics | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.metrics = metrics

    def after_attempt(self, task: DeliveryTask, result: AttemptResult) -> None:
        if self.metrics is not None:
            self.metrics.observe_attempt(result.outcome, result.duration)


class RequestMeter:
    """ASGI middleware: counts the application's requests in flight (for the
    readiness probe) and, given metrics, measures them."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.in_flight -= 1
            if self.metrics is not None:
                self.metrics.observe_request(
                    str(scope.get("method", "")),
                    status,
                    time.perf_counter() - started,
                )
