"""Retries: policy arithmetic, and the default dispatcher retrying real failures."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from thorn import Event
from thorn.exceptions import (
    BadStatus,
    ConnectionFailed,
    DeliveryTimeout,
    RecipientRejected,
)
from thorn.listener import Reply
from thorn.retry import RetryPolicy, is_retryable
from thorn.transport.client import Response


def bad(status: int) -> BadStatus:
    return BadStatus("x", response=Response(status, "", [], b""))


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(delay=1.0, backoff=True, backoff_max=5.0, jitter=False)
    assert [policy.delay_for(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_factor_and_no_backoff() -> None:
    assert RetryPolicy(delay=1, backoff=3.0, jitter=False).delay_for(2) == 9.0
    assert RetryPolicy(delay=60, backoff=False, jitter=False).delay_for(5) == 60.0


def test_jitter_stays_between_half_and_all_of_the_wait() -> None:
    policy = RetryPolicy(delay=10.0, backoff=False, jitter=True)
    waits = [policy.delay_for(0) for _ in range(200)]
    assert all(5.0 <= w <= 10.0 for w in waits)
    assert len(set(waits)) > 1


def test_retry_after_replaces_the_computed_wait_within_the_cap() -> None:
    policy = RetryPolicy(delay=1.0, backoff_max=100.0)
    assert policy.delay_for(0, retry_after=42.0) == 42.0
    assert policy.delay_for(0, retry_after=10_000.0) == 100.0


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (bad(500), True),
        (bad(404), True),
        (bad(429), True),
        (bad(410), False),
        (DeliveryTimeout("t"), True),
        (ConnectionFailed("c"), True),
        (RecipientRejected("r"), False),
        (ValueError("bad url"), False),
    ],
)
def test_what_is_retried(exc: BaseException, retryable: bool) -> None:
    assert is_retryable(exc) is retryable


def test_max_retries_and_the_retry_switch() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.should_retry(0, bad(500))
    assert policy.should_retry(1, bad(500))
    assert not policy.should_retry(2, bad(500))
    assert not RetryPolicy(retry=False).should_retry(0, bad(500))


def test_settings_defaults_follow_the_configuration_reference(make_app: Any) -> None:
    app = make_app()
    policy = Event("x.y", app=app).retry_policy
    assert (policy.retry, policy.max_retries, policy.delay) == (True, 10, 60.0)
    policy = Event("x.y", app=app, retry=False, retry_max=3, retry_delay=5).retry_policy
    assert (policy.retry, policy.max_retries, policy.delay) == (False, 3, 5.0)


def test_failed_delivery_is_retried_until_it_succeeds(
    make_app: Any, receiver: Any
) -> None:
    app = make_app(THORN_RETRY_DELAY=0.01)
    receiver.route("/flaky", [Reply(status=500), Reply(status=503), Reply(status=200)])
    ok: list[Any] = []
    errors: list[Any] = []
    (request,) = Event("x.y", subscribers=[receiver.url("/flaky")]).send(
        {}, on_success=ok.append, on_error=lambda r, e: errors.append(e)
    )
    assert app.dispatcher.wait_for_retries(10)
    hooks = receiver.wait_for(3)
    assert {h.header("hook-delivery") for h in hooks} == {request.id}
    assert ok == [request]
    assert errors == []
    assert request.retries == 2


def test_retries_stop_at_retry_max_and_report_once(
    make_app: Any, receiver: Any
) -> None:
    app = make_app(THORN_RETRY_DELAY=0.01, THORN_RETRY_MAX=2)
    receiver.route("/down", Reply(status=500))
    errors: list[Any] = []
    Event("x.y", subscribers=[receiver.url("/down")]).send(
        {}, on_error=lambda r, e: errors.append(e)
    )
    assert app.dispatcher.wait_for_retries(10)
    assert receiver.listener.count == 3
    assert len(errors) == 1
    assert isinstance(errors[0], BadStatus)


def test_gone_is_not_retried(make_app: Any, receiver: Any) -> None:
    app = make_app(THORN_RETRY_DELAY=0.01)
    receiver.route("/gone", Reply(status=410))
    errors: list[Any] = []
    Event("x.y", subscribers=[receiver.url("/gone")]).send(
        {}, on_error=lambda r, e: errors.append(e)
    )
    assert app.dispatcher.wait_for_retries(5)
    assert receiver.listener.count == 1
    assert len(errors) == 1


def test_timeouts_are_retried_and_reported_to_on_timeout(
    make_app: Any, receiver: Any
) -> None:
    app = make_app(THORN_RETRY_DELAY=0.01, THORN_RETRY_MAX=1)
    receiver.route("/slow", Reply(delay=1.0))
    timeouts: list[Any] = []
    Event("x.y", subscribers=[receiver.url("/slow")], timeout=0.1).send(
        {}, on_timeout=lambda r, e: timeouts.append(e)
    )
    assert app.dispatcher.wait_for_retries(10)
    assert len(timeouts) == 1
    assert isinstance(timeouts[0], DeliveryTimeout)
    assert receiver.listener.count == 2


def test_retry_after_is_honoured(make_app: Any, receiver: Any, caplog: Any) -> None:
    app = make_app(THORN_RETRY_DELAY=0.01)
    receiver.route("/busy", [Reply(status=429, headers={"Retry-After": "1"}), Reply()])
    with caplog.at_level(logging.INFO, logger="thorn"):
        Event("x.y", subscribers=[receiver.url("/busy")]).send({})
        assert "retrying in 1.0s" in caplog.text
        assert app.dispatcher.wait_for_retries(10)
    assert receiver.listener.count == 2


def test_a_failing_receiver_does_not_hold_up_the_others(
    make_app: Any, receiver: Any
) -> None:
    make_app(THORN_RETRY=False)
    receiver.route("/slow", Reply(action="hang"))
    good: list[Any] = []
    event = Event(
        "x.y",
        subscribers=[receiver.url("/slow")]
        + [receiver.url(f"/ok{i}") for i in range(5)],
        timeout=0.3,
    )
    event.send({}, on_success=good.append)
    assert len(good) == 5


def test_a_callback_that_raises_does_not_stop_other_deliveries(
    app: Any, receiver: Any, caplog: Any
) -> None:
    calls: list[Any] = []

    def explode(request: Any) -> None:
        calls.append(request)
        raise RuntimeError("boom")

    event = Event("x.y", subscribers=[receiver.url("/a"), receiver.url("/b")])
    with caplog.at_level(logging.ERROR, logger="thorn"):
        event.send({}, on_success=explode)
    assert len(calls) == 2
    assert "callback" in caplog.text


def test_a_schedule_gives_each_wait_in_turn() -> None:
    policy = RetryPolicy(schedule=(5.0, 300.0, 1800.0), max_retries=3, jitter=False)
    assert [policy.delay_for(n) for n in range(4)] == [5.0, 300.0, 1800.0, 1800.0]
    assert RetryPolicy.from_dict(policy.to_dict()) == policy


def test_the_durable_ladder_gives_way_to_the_manuals_settings() -> None:
    from thorn.conf import Settings

    ladder = RetryPolicy.ladder_from_settings(Settings({}))
    assert ladder.schedule is not None
    assert ladder.max_retries == len(ladder.schedule)
    assert 24 * 3600 < sum(ladder.schedule) < 48 * 3600  # about a day and a half
    manual = RetryPolicy.ladder_from_settings(Settings({"THORN_RETRY_DELAY": 10}))
    assert manual.schedule is None
    assert manual.delay == 10
    per_event = RetryPolicy.ladder_from_settings(Settings({}), max_retries=2)
    assert per_event.schedule is None
    assert per_event.max_retries == 2


def test_settings_know_what_was_set() -> None:
    from thorn.conf import Settings

    s = Settings({"THORN_RETRY_MAX": 3})
    assert s.is_set("THORN_RETRY_MAX")
    assert not s.is_set("THORN_RETRY_DELAY")
    s.configure(THORN_RETRY_DELAY=1)
    assert s.is_set("THORN_RETRY_DELAY")
