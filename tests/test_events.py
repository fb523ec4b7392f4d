"""Events sent from plain Python reach real receivers as signed POSTs."""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import uuid
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from thorn import Event, Subscriber
from thorn.exceptions import (
    ImproperlyConfigured,
    PayloadTooLarge,
    RecipientRejected,
    UnencodablePayload,
    UnknownEvent,
)
from thorn.listener import Reply
from thorn.signing import standard_webhooks_secret
from thorn.utils.hmac import verify

SECRET = "C=JTX)v3~dQCl];[_h[{q{CScm]oglLoe&>ga:>R~jR$.x?t|kW!FH:s@|4bu:11"


def test_event_is_delivered_with_every_documented_header(
    app: Any, receiver: Any
) -> None:
    app.configure(
        THORN_SUBSCRIBERS={
            "user.created": {
                "url": receiver.url("/hook"),
                "hmac_secret": SECRET,
                "hmac_digest": "sha256",
            }
        }
    )
    requests = Event("user.created").send({"username": "george"})
    assert len(requests) == 1
    (hook,) = receiver.wait_for(1)
    assert hook.method == "POST"
    assert hook.path == "/hook"
    assert json.loads(hook.body) == {"username": "george"}
    assert hook.header("Hook-Event") == "user.created"
    assert hook.header("Hook-Delivery") == requests[0].id
    assert hook.header("Hook-Subscription") == requests[0].subscriber.uuid
    assert hook.header("Content-Type") == "application/json"
    ua = hook.header("User-Agent")
    assert ua is not None
    assert "thorn/" in ua
    assert "httptools/" in ua
    # Hook-HMAC as the manual's consumer example computes it.
    assert verify(hook.header("Hook-HMAC"), "sha256", SECRET, hook.body)
    # Standard Webhooks, checked by the public library.
    Webhook(standard_webhooks_secret(SECRET)).verify(hook.body, hook.headers)
    assert hook.header("webhook-id") == requests[0].id
    assert requests[0].response is not None
    assert requests[0].response.status == 200


def test_every_subscriber_of_an_event_receives_it(app: Any, receiver: Any) -> None:
    urls = [receiver.url(f"/s{i}") for i in range(10)]
    app.configure(THORN_SUBSCRIBERS={"order.paid": urls})
    Event("order.paid").send({"id": 1})
    hooks = receiver.wait_for(10)
    assert sorted(h.path for h in hooks) == sorted(f"/s{i}" for i in range(10))
    assert len({h.header("Hook-Delivery") for h in hooks}) == 10


def test_patterns_in_settings_select_events(app: Any, receiver: Any) -> None:
    app.configure(
        THORN_SUBSCRIBERS={
            "user.*": receiver.url("/users"),
            "*.created": receiver.url("/created"),
            "*": receiver.url("/all"),
            "article.changed": receiver.url("/never"),
        }
    )
    Event("user.created").send({})
    hooks = receiver.wait_for(3)
    assert sorted(h.path for h in hooks) == ["/all", "/created", "/users"]


def test_event_subscribers_argument_adds_urls_dicts_and_callables(
    app: Any, receiver: Any
) -> None:
    seen: list[tuple[str, Any]] = []

    def more(event: str, sender: Any = None, **context: Any) -> Any:
        seen.append((event, context))
        yield receiver.url("/generated")

    event = Event(
        "invoice.sent",
        subscribers=[
            receiver.url("/plain"),
            {
                "url": receiver.url("/form"),
                "content_type": "application/x-www-form-urlencoded",
            },
            more,
        ],
    )
    event.send({"n": 1, "who": "x"}, context={"tenant": "t1"})
    hooks = {h.path: h for h in receiver.wait_for(3)}
    assert set(hooks) == {"/plain", "/form", "/generated"}
    assert hooks["/form"].body == b"n=1&who=x"
    assert hooks["/form"].header("content-type") == "application/x-www-form-urlencoded"
    assert seen == [("invoice.sent", {"tenant": "t1"})]


def test_subscribers_with_a_user_only_receive_that_users_events(
    app: Any, receiver: Any
) -> None:
    class User:
        def __init__(self, pk: int) -> None:
            self.pk = pk

    event = Event(
        "note.added",
        subscribers=[
            Subscriber(url=receiver.url("/u1"), event="note.*", user=1),
            Subscriber(url=receiver.url("/u2"), event="note.*", user=2),
            Subscriber(url=receiver.url("/any"), event="note.*"),
        ],
    )
    event.send({}, sender=User(1))
    assert sorted(h.path for h in receiver.wait_for(2)) == ["/any", "/u1"]
    receiver.clear()
    event.send({})  # no sender: only subscribers without a user
    assert [h.path for h in receiver.wait_for(1)] == ["/any"]


def test_documented_types_are_serialised(app: Any, receiver: Any) -> None:
    when = datetime.datetime(2016, 1, 13, 23, 12, 52, 205785, tzinfo=datetime.UTC)
    ident = uuid.UUID("c91fe938-55fb-4190-a5ed-bd92f5ea8339")
    event = Event("x.y", subscribers=[receiver.url()])
    event.send(
        {
            "at": when,
            "day": datetime.date(2016, 1, 13),
            "time": datetime.time(23, 12, 52, 205785),
            "price": decimal.Decimal("10.10"),
            "id": ident,
        }
    )
    (hook,) = receiver.wait_for(1)
    assert hook.json() == {
        "at": "2016-01-13T23:12:52.205785+00:00",
        "day": "2016-01-13",
        "time": "23:12:52.205785",
        "price": "10.10",
        "id": str(ident),
    }


def test_unencodable_payload_raises_before_anything_is_sent(
    app: Any, receiver: Any
) -> None:
    event = Event("x.y", subscribers=[receiver.url("/a"), receiver.url("/b")])
    with pytest.raises(UnencodablePayload):
        event.send({"file": object()})
    assert receiver.hooks == []


def test_oversized_payload_raises_before_anything_is_sent(
    make_app: Any, receiver: Any
) -> None:
    make_app(THORN_PAYLOAD_MAX_SIZE=1000)
    event = Event("x.y", subscribers=[receiver.url()])
    with pytest.raises(PayloadTooLarge, match="1000"):
        event.send({"blob": "x" * 2000})
    assert receiver.hooks == []


def test_request_data_is_injected_into_the_payload(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()], request_data={"api": "v1"})
    event.send({"a": 1})
    assert receiver.wait_for(1)[0].json() == {"a": 1, "api": "v1"}


def test_extra_headers_are_sent_and_header_injection_is_refused(
    app: Any, receiver: Any
) -> None:
    event = Event("x.y", subscribers=[receiver.url()])
    event.send({}, headers={"Authorization": "Bearer t"})
    assert receiver.wait_for(1)[0].header("authorization") == "Bearer t"
    with pytest.raises(ValueError, match="CR, LF"):
        event.send({}, headers={"X-Evil": "a\r\nHost: other"})
    with pytest.raises(ValueError, match="set by Thorn"):
        event.send({}, headers={"Hook-Event": "forged"})


def test_event_names_are_checked(app: Any) -> None:
    for bad in ["", "user..created", "user.*", "has space", 42]:
        with pytest.raises(ValueError):
            Event(bad)  # type: ignore[arg-type]


def test_event_choices_refuse_unknown_events(make_app: Any, receiver: Any) -> None:
    make_app(THORN_EVENT_CHOICES=["user.created", "article.*"], THORN_RETRY=False)
    Event("article.published", subscribers=[receiver.url()]).send({})
    with pytest.raises(UnknownEvent, match="THORN_EVENT_CHOICES"):
        Event("user.deleted", subscribers=[receiver.url()]).send({})
    assert len(receiver.wait_for(1)) == 1


def test_callbacks_report_success_and_errors(app: Any, receiver: Any) -> None:
    receiver.route("/bad", Reply(status=500))
    ok: list[Any] = []
    failed: list[tuple[Any, BaseException]] = []
    event = Event("x.y", subscribers=[receiver.url("/good"), receiver.url("/bad")])
    event.send(
        {}, on_success=ok.append, on_error=lambda req, exc: failed.append((req, exc))
    )
    assert [r.url.target for r in ok] == ["/good"]
    assert len(failed) == 1
    request, exc = failed[0]
    assert request.response.status == 500
    assert "500" in str(exc)


def test_default_validators_refuse_loopback_and_odd_ports(
    make_app: Any, receiver: Any, caplog: Any
) -> None:
    make_app(THORN_RECIPIENT_VALIDATORS=None, THORN_RETRY=False)
    errors: list[BaseException] = []
    event = Event("x.y", subscribers=[receiver.url("/")])
    with caplog.at_level(logging.WARNING):
        event.send({}, on_error=lambda req, exc: errors.append(exc))
    assert len(errors) == 1
    assert isinstance(errors[0], RecipientRejected)
    assert receiver.hooks == []


def test_per_event_validators_override_the_setting(
    make_app: Any, receiver: Any
) -> None:
    from thorn.validators import ensure_protocol

    make_app(THORN_RECIPIENT_VALIDATORS=None, THORN_RETRY=False)
    event = Event(
        "x.y",
        subscribers=[receiver.url()],
        recipient_validators=[ensure_protocol("http")],
    )
    event.send({})
    assert len(receiver.wait_for(1)) == 1


def test_secrets_never_reach_the_logs(
    make_app: Any, receiver: Any, caplog: Any
) -> None:
    make_app(THORN_RETRY=False)
    receiver.route("/down", Reply(status=503))
    url = receiver.url("/down").replace("http://", "http://user:pa55word@")
    event = Event("x.y", subscribers=[{"url": url, "hmac_secret": SECRET}])
    with caplog.at_level(logging.DEBUG, logger="thorn"):
        (request,) = event.send({"k": "v"})
    (hook,) = receiver.wait_for(1)
    assert (
        hook.header(
            "authorization",
        )
        is not None
    )
    text = caplog.text + repr(request) + str(request.exception)
    assert "pa55word" not in text
    assert SECRET not in text
    assert hook.header("hook-hmac") not in text


def test_disabled_dispatcher_sends_nothing(make_app: Any, receiver: Any) -> None:
    make_app(THORN_DISPATCHER="disabled")
    assert Event("x.y", subscribers=[receiver.url()]).send({}) == []
    assert receiver.hooks == []


def test_dispatcher_can_be_a_dotted_path(make_app: Any, receiver: Any) -> None:
    app = make_app(THORN_DISPATCHER="thorn.dispatch.disabled:Dispatcher")
    assert type(app.dispatcher).__name__ == "DisabledDispatcher"
    make_app(THORN_DISPATCHER="nope")
    with pytest.raises(ImproperlyConfigured, match="THORN_DISPATCHER"):
        Event("x.y").send({})


def test_keepalive_can_be_disabled_per_event(app: Any, receiver: Any) -> None:
    event = Event("x.y", subscribers=[receiver.url()], allow_keepalive=False)
    event.send({})
    assert receiver.wait_for(1)[0].header("connection") == "close"


def test_a_request_made_by_hand_uses_the_default_validators(
    make_app: Any, receiver: Any
) -> None:
    from thorn import Request

    make_app(THORN_RECIPIENT_VALIDATORS=None)
    request = Request("x.y", {}, None, Subscriber(url=receiver.url()))
    with pytest.raises(RecipientRejected):
        request.post()
    assert receiver.hooks == []


def test_a_request_has_the_manuals_session_errors_and_url_helpers(
    make_app: Any, receiver: Any
) -> None:
    from thorn import Request
    from thorn.exceptions import ConnectionFailed, DeliveryTimeout
    from thorn.transport.client import SyncClient
    from thorn.transport.url import InvalidURL
    from thorn.validators import ensure_protocol

    make_app(THORN_RECIPIENT_VALIDATORS=None)
    request = Request("x.y", {}, None, Subscriber(url=receiver.url()))
    assert Request.Session is SyncClient
    assert issubclass(Request.connection_errors[0], ConnectionFailed)
    assert issubclass(Request.timeout_errors[0], DeliveryTimeout)
    assert (
        request.to_safeurl("https://ada:s3cret@example.com/hook?x=1")
        == "https://ada:***@example.com/hook?x=1"
    )
    # The default validators refuse the receiver's loopback address.
    with pytest.raises(RecipientRejected):
        request.validate_recipient(receiver.url())
    with pytest.raises(InvalidURL):
        request.validate_recipient("not a url")
    allowed = Request(
        "x.y",
        {},
        None,
        Subscriber(url=receiver.url()),
        recipient_validators=[ensure_protocol("http")],
    )
    allowed.validate_recipient(receiver.url())
    with pytest.raises(RecipientRejected):
        allowed.validate_recipient("https://example.com/")
    session = SyncClient()
    try:
        with allowed.session_or_acquire(session) as got:
            assert got is session
            allowed.dispatch(session=got)
        assert receiver.wait_for(1)[0].path == "/"
    finally:
        session.close()
    with allowed.session_or_acquire() as shared:
        assert isinstance(shared, SyncClient)


def test_an_extra_user_agent_replaces_thorns(app: Any, receiver: Any) -> None:
    Event("x.y", subscribers=[receiver.url()]).send(
        {}, headers={"User-Agent": "mine/1"}
    )
    (hook,) = receiver.wait_for(1)
    assert hook.header("user-agent") == "mine/1"


def test_requests_travel_as_json_even_with_callable_filters(app: Any) -> None:
    from thorn import Q, Request

    sub = Subscriber(url="https://example.com/", filters=Q(a__eq=1), hmac_secret="k")
    request = Request("x.y", {"a": 1}, None, sub)
    data = json.loads(json.dumps(request.as_dict()))
    again = Request.from_dict(data)
    assert again.id == request.id
    assert again.subscriber.hmac_secret == "k"
    assert again.subscriber.uuid == sub.uuid


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="hmac_secret is empty"):
        Subscriber(url="https://example.com/", hmac_secret="")


def test_delivery_ids_are_uuid7_and_increase_in_the_order_they_are_made() -> None:
    from thorn.request import new_id

    ids = [new_id() for _ in range(20_000)]  # many share a millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    # The first 48 bits are the time in milliseconds.
    now_ms = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
    assert abs((parsed.int >> 80) - now_ms) < 60_000


def test_delivery_ids_still_increase_when_the_clock_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import thorn.request as module

    first = module.new_id()
    clock = iter(range(10**15, 10**15 - 100 * 10**6, -(10**6)))  # back 1 ms a call
    monkeypatch.setattr(module.time, "time_ns", lambda: next(clock))
    later = [module.new_id() for _ in range(50)]
    assert [first, *later] == sorted([first, *later])
    assert len(set(later)) == 50


def test_a_forked_child_does_not_count_on_from_its_parents_last_id() -> None:
    import os

    import thorn.request as module

    module.new_id()
    assert module._last_ms != 0
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, str(module._last_ms).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        seen = answer.read()
    os.waitpid(pid, 0)
    assert seen == "0"
