"""The subscription REST API: CRUD, ownership, validation, permissions, schema."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission
from rest_framework.test import APIClient

from thorn.app import current_app
from thorn.listener import ListenerThread
from thorn.receiver import verify_request

LIST = "/hooks/"
SCHEMA = "/api/schema/?format=json"
#: The keys of the manual's create example (3.1.2), plus Thorn 2's additions.
MANUAL_KEYS = {
    "id",
    "url",
    "created_at",
    "updated_at",
    "user",
    "hmac_secret",
    "hmac_digest",
    "content_type",
    "subscription",
    "event",
}
ADDED_KEYS = {"active", "payload_filters"}
MANUAL_PAYLOAD = {"event": "article.*", "url": "https://e.com/h/article?u=1"}
SECRET = "correct-horse-battery-staple-42"

pytestmark = pytest.mark.django_db


def detail(subscription_id: str | uuid.UUID) -> str:
    return f"/hooks/{subscription_id}/"


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("mallory")


@pytest.fixture
def api(user: Any) -> APIClient:
    """An API client logged in as ``user``."""
    api = APIClient()
    api.force_authenticate(user)
    return api


@pytest.fixture
def other_api(other_user: Any) -> APIClient:
    api = APIClient()
    api.force_authenticate(other_user)
    return api


@pytest.fixture
def created(api: APIClient) -> dict[str, Any]:
    """A subscription made through the API (the answer's JSON)."""
    response = api.post(LIST, MANUAL_PAYLOAD, format="json")
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def post(api: APIClient, **data: Any) -> Any:
    return api.post(LIST, {**MANUAL_PAYLOAD, **data}, format="json")


def errors_of(response: Any, field: str) -> str:
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    return " ".join(body[field])


# -- the owner's operations ------------------------------------------------------


def test_the_manuals_curl_example_creates_a_subscription(
    api: APIClient, user: Any
) -> None:
    response = api.post(LIST, MANUAL_PAYLOAD, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == MANUAL_KEYS | ADDED_KEYS
    assert body["event"] == "article.*"
    assert body["url"] == "https://e.com/h/article?u=1"
    assert body["user"] == user.pk
    assert body["content_type"] == "application/json"
    assert body["hmac_digest"] == "sha256"
    assert len(body["hmac_secret"]) == 64
    assert body["active"] is True
    assert body["payload_filters"] == {}
    assert uuid.UUID(body["id"])
    assert body["subscription"] == f"http://testserver/hooks/{body['id']}/"
    stored = current_app().Subscriber.objects.get(uuid=body["id"])
    assert stored.user == user
    assert stored.hmac_secret == body["hmac_secret"]


def test_each_subscription_gets_its_own_generated_secret(api: APIClient) -> None:
    first = post(api).json()
    second = post(api).json()

    assert first["hmac_secret"] != second["hmac_secret"]


def test_optional_fields_can_be_given_at_creation(api: APIClient) -> None:
    response = post(
        api,
        content_type="application/x-www-form-urlencoded",
        hmac_digest="sha512",
        hmac_secret=SECRET,
        active=False,
        payload_filters={"data.state": "PUBLISHED"},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["content_type"] == "application/x-www-form-urlencoded"
    assert body["hmac_digest"] == "sha512"
    assert body["hmac_secret"] == SECRET
    assert body["active"] is False
    assert body["payload_filters"] == {"data.state": "PUBLISHED"}


def test_list_shows_the_users_subscriptions_without_secrets(
    api: APIClient, created: dict[str, Any]
) -> None:
    response = api.get(LIST)

    assert response.status_code == 200
    (item,) = response.json()
    assert item["id"] == created["id"]
    assert "hmac_secret" not in item
    assert set(item) == (MANUAL_KEYS | ADDED_KEYS) - {"hmac_secret"}
    assert created["hmac_secret"] not in response.content.decode()


def test_list_is_newest_first(api: APIClient) -> None:
    ids = [post(api, event=f"article.{n}").json()["id"] for n in range(3)]

    listed = [item["id"] for item in api.get(LIST).json()]

    assert listed == ids[::-1]


def test_owner_reads_a_subscription_with_its_secret(
    api: APIClient, created: dict[str, Any]
) -> None:
    response = api.get(created["subscription"])

    assert response.status_code == 200
    assert response.json() == created


def test_put_replaces_a_subscription(api: APIClient, created: dict[str, Any]) -> None:
    response = api.put(
        detail(created["id"]),
        {"event": "article.created", "url": "https://e.com/h/created"},
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["event"] == "article.created"
    assert body["url"] == "https://e.com/h/created"
    assert body["id"] == created["id"]
    assert body["hmac_secret"] == created["hmac_secret"]


def test_put_requires_event_and_url(api: APIClient, created: dict[str, Any]) -> None:
    response = api.put(detail(created["id"]), {}, format="json")

    assert errors_of(response, "event") == "This field is required."
    assert errors_of(response, "url") == "This field is required."


def test_a_get_answer_can_be_put_back_unchanged(
    api: APIClient, created: dict[str, Any]
) -> None:
    response = api.put(detail(created["id"]), created, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert {k: v for k, v in body.items() if k != "updated_at"} == {
        k: v for k, v in created.items() if k != "updated_at"
    }


def test_patch_changes_only_the_given_fields(
    api: APIClient, created: dict[str, Any]
) -> None:
    response = api.patch(detail(created["id"]), {"hmac_secret": SECRET}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["hmac_secret"] == SECRET
    assert body["event"] == created["event"]
    assert body["url"] == created["url"]


def test_turning_a_subscription_off_and_on_keeps_disabled_fields_in_step(
    api: APIClient, created: dict[str, Any]
) -> None:
    stored = current_app().Subscriber.objects.get(uuid=created["id"])
    stored.disable("410 Gone")

    response = api.patch(detail(created["id"]), {"active": True}, format="json")

    assert response.json()["active"] is True
    stored.refresh_from_db()
    assert (stored.active, stored.disabled_reason, stored.disabled_at) == (
        True,
        "",
        None,
    )
    api.patch(detail(created["id"]), {"active": False}, format="json")
    stored.refresh_from_db()
    assert not stored.active
    assert "owner" in stored.disabled_reason
    assert stored.disabled_at is not None


def test_turning_a_subscription_back_on_makes_its_waiting_deliveries_due(
    api: APIClient, created: dict[str, Any], settings: Any
) -> None:
    import datetime

    from django.utils import timezone

    from thorn import Event
    from thorn.django.models import Delivery

    settings.THORN_DISPATCHER = "outbox"
    stored = current_app().Subscriber.objects.get(uuid=created["id"])
    Event("article.created").send({"n": 1}, sender=stored.user)  # owner sends
    later = timezone.now() + datetime.timedelta(hours=6)
    Delivery.objects.update(next_attempt_at=later)
    stored.disable("410 Gone")
    stored.failing_since = timezone.now()
    stored.save(update_fields=["failing_since"])

    api.patch(detail(created["id"]), {"active": True}, format="json")

    (delivery,) = Delivery.objects.all()
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at <= timezone.now()
    stored.refresh_from_db()
    assert stored.failing_since is None


def test_creating_an_inactive_subscription_records_who_turned_it_off(
    api: APIClient,
) -> None:
    response = post(api, active=False)

    stored = current_app().Subscriber.objects.get(uuid=response.json()["id"])
    assert not stored.active
    assert stored.disabled_reason == "turned off by its owner through the API"
    assert stored.disabled_at is not None


def test_delete_removes_a_subscription(api: APIClient, created: dict[str, Any]) -> None:
    response = api.delete(detail(created["id"]))

    assert response.status_code == 204
    assert api.get(detail(created["id"])).status_code == 404
    assert not current_app().Subscriber.objects.filter(uuid=created["id"]).exists()


def test_post_to_a_subscription_is_not_allowed(
    api: APIClient, created: dict[str, Any]
) -> None:
    response = api.post(detail(created["id"]), MANUAL_PAYLOAD, format="json")

    assert response.status_code == 405


def test_an_unknown_id_answers_404(api: APIClient) -> None:
    response = api.get(detail(uuid.uuid4()))

    assert response.status_code == 404
    assert "detail" in response.json()


# -- other users, anonymous users, permissions --------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_another_users_subscription_answers_404(
    other_api: APIClient, created: dict[str, Any], method: str
) -> None:
    response = getattr(other_api, method)(
        detail(created["id"]), MANUAL_PAYLOAD, format="json"
    )

    assert response.status_code == 404
    stored = current_app().Subscriber.objects.get(uuid=created["id"])
    assert stored.event == created["event"]


def test_another_users_subscriptions_are_not_listed(
    other_api: APIClient, created: dict[str, Any]
) -> None:
    assert other_api.get(LIST).json() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", LIST), ("post", LIST), ("get", "detail"), ("delete", "detail")],
)
def test_anonymous_users_are_refused(
    created: dict[str, Any], method: str, path: str
) -> None:
    target = detail(created["id"]) if path == "detail" else path

    response = getattr(APIClient(), method)(target, MANUAL_PAYLOAD, format="json")

    assert response.status_code in (401, 403)
    assert "hmac_secret" not in response.content.decode()


def test_a_token_is_enough_to_log_in(user: Any) -> None:
    token = Token.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert api.post(LIST, MANUAL_PAYLOAD, format="json").status_code == 201
    assert APIClient().get(LIST).status_code in (401, 403)


class RefuseWrites(BasePermission):
    """A project permission: read-only API."""

    message = "This API is read-only for you."

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.method in ("GET", "HEAD", "OPTIONS")


def test_drf_permission_classes_setting_adds_permissions(
    api: APIClient, created: dict[str, Any]
) -> None:
    with override_settings(THORN_DRF_PERMISSION_CLASSES=[RefuseWrites]):
        refused = api.post(LIST, MANUAL_PAYLOAD, format="json")
        listed = api.get(LIST)
        deleted = api.delete(detail(created["id"]))

    assert refused.status_code == 403
    assert refused.json() == {"detail": RefuseWrites.message}
    assert listed.status_code == 200
    assert deleted.status_code == 403
    assert api.post(LIST, MANUAL_PAYLOAD, format="json").status_code == 201


def test_drf_permission_classes_may_be_import_paths(api: APIClient, user: Any) -> None:
    with override_settings(
        THORN_DRF_PERMISSION_CLASSES=["rest_framework.permissions.IsAdminUser"]
    ):
        assert api.get(LIST).status_code == 403
        user.is_staff = True
        user.save()
        assert api.get(LIST).status_code == 200


def test_drf_permission_classes_still_require_a_login() -> None:
    with override_settings(
        THORN_DRF_PERMISSION_CLASSES=["rest_framework.permissions.AllowAny"]
    ):
        assert APIClient().get(LIST).status_code in (401, 403)


# -- validation ----------------------------------------------------------------------


def test_event_and_url_are_required(api: APIClient) -> None:
    response = api.post(LIST, {}, format="json")

    assert errors_of(response, "event") == "This field is required."
    assert errors_of(response, "url") == "This field is required."


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "ftp://93.184.215.14/",
        "http://93.184.215.14:8080/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_default_recipient_validators_refuse_internal_urls(
    api: APIClient, url: str
) -> None:
    with override_settings(THORN_RECIPIENT_VALIDATORS=None):
        response = post(api, url=url)

    message = errors_of(response, "url")
    assert message.startswith("Refusing to deliver to")
    assert not current_app().Subscriber.objects.exists()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback address"),
        ("http://10.0.0.1/", "private-use address"),
        ("ftp://93.184.215.14/", "scheme 'ftp' is not allowed"),
        ("http://93.184.215.14:8080/", "port 8080 is not allowed"),
    ],
)
def test_url_errors_say_why_and_what_to_do(
    api: APIClient, url: str, reason: str
) -> None:
    with override_settings(THORN_RECIPIENT_VALIDATORS=None):
        message = errors_of(post(api, url=url), "url")

    assert reason in message
    assert message.endswith(".")


def test_default_recipient_validators_accept_a_public_url(api: APIClient) -> None:
    with override_settings(THORN_RECIPIENT_VALIDATORS=None):
        response = post(api, url="https://93.184.215.14/hooks")

    assert response.status_code == 201, response.content


def test_the_test_projects_validators_allow_local_receivers(
    api: APIClient,
) -> None:
    assert post(api, url="http://127.0.0.1:8080/hook").status_code == 201


def test_a_url_that_is_no_url_is_refused(api: APIClient) -> None:
    message = errors_of(post(api, url="not a url"), "url")

    assert "Enter a full URL" in message


def test_a_too_long_url_is_refused(api: APIClient) -> None:
    url = "https://e.com/" + "a" * 2048

    assert "2048" in errors_of(post(api, url=url), "url")


@pytest.mark.parametrize(
    ("event", "hint"),
    [
        ("article..created", "empty word"),
        ("art*cle.created", "'*' must stand for a whole word"),
        ("article created", "whitespace"),
        ("", "may not be blank"),
    ],
)
def test_event_must_be_a_valid_pattern(api: APIClient, event: str, hint: str) -> None:
    assert hint in errors_of(post(api, event=event), "event")


@pytest.mark.parametrize("event", ["article.created", "*.created", "*", "a.*.b"])
def test_event_patterns_are_accepted(api: APIClient, event: str) -> None:
    assert post(api, event=event).status_code == 201


def test_event_choices_setting_restricts_events_strictly(api: APIClient) -> None:
    choices = ["article.created", "article.changed"]
    with override_settings(THORN_EVENT_CHOICES=choices):
        accepted = post(api, event="article.created")
        pattern = post(api, event="article.*")
        other = post(api, event="user.created")

    assert accepted.status_code == 201
    message = errors_of(pattern, "event")
    assert "'article.*' is not an event you can subscribe to" in message
    assert "article.created, article.changed" in message
    assert other.status_code == 400
    assert post(api, event="user.created").status_code == 201


def test_content_type_must_be_one_of_two(api: APIClient) -> None:
    message = errors_of(post(api, content_type="text/xml"), "content_type")

    assert message == (
        '"text/xml" is not a valid content_type; use one of: '
        "application/json, application/x-www-form-urlencoded."
    )


def test_hmac_digest_must_be_sha1_sha256_or_sha512(api: APIClient) -> None:
    message = errors_of(post(api, hmac_digest="md5"), "hmac_digest")

    assert message == (
        '"md5" is not a valid hmac_digest; use one of: sha1, sha256, sha512.'
    )


@pytest.mark.parametrize("length", [16, 64, 255])
def test_a_chosen_secret_of_16_to_255_characters_is_kept(
    api: APIClient, length: int
) -> None:
    secret = ("s3cr3t-" * 40)[:length]

    response = post(api, hmac_secret=secret)

    assert response.status_code == 201
    assert response.json()["hmac_secret"] == secret


@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        ("fifteen-chars!!", "at least 16 characters"),
        ("x" * 256, "at most 255 characters"),
        ("", "leave hmac_secret out"),
        ("tab\tinside-a-long-secret", "control characters"),
    ],
)
def test_a_bad_secret_is_refused_without_repeating_it(
    api: APIClient, secret: str, hint: str
) -> None:
    response = post(api, hmac_secret=secret)

    assert hint in errors_of(response, "hmac_secret")
    if secret:
        assert secret not in response.content.decode()


@pytest.mark.parametrize(
    ("filters", "hint"),
    [
        ({"data.name": {"match": "nope", "value": 1}}, "unknown matcher"),
        ({"data.name": {"match": "is"}}, 'needs a "value"'),
        ({"data..name": 1}, "invalid field path"),
        (["data.name"], "must be an object"),
        ({"data.name": "a\x00b"}, "NUL character"),
    ],
)
def test_payload_filters_must_be_valid(api: APIClient, filters: Any, hint: str) -> None:
    message = errors_of(post(api, payload_filters=filters), "payload_filters")

    assert hint in message
    assert message.startswith("Invalid payload filter") or "NUL" in message


def test_payload_filters_are_stored_in_their_canonical_form(
    api: APIClient,
) -> None:
    filters = {
        "data.state": {"match": "is", "value": "PUBLISHED"},
        "data.name": {"match": "startswith", "value": "J"},
    }

    response = post(api, payload_filters=filters)

    assert response.status_code == 201, response.content
    assert response.json()["payload_filters"] == {
        "data.state": "PUBLISHED",
        "data.name": {"match": "startswith", "value": "J"},
    }


def test_unknown_fields_are_refused_with_the_fields_one_can_set(
    api: APIClient,
) -> None:
    response = post(api, hmac_digets="sha1")

    message = errors_of(response, "hmac_digets")
    assert message.startswith("Unknown field; the fields you can set are: event, url")
    assert "hmac_digest" in message


def test_unknown_fields_are_reported_with_the_other_errors(
    api: APIClient,
) -> None:
    response = api.post(LIST, {"evnt": "article.*"}, format="json")

    body = response.json()
    assert set(body) == {"evnt", "event", "url"}


def test_read_only_fields_are_ignored(api: APIClient, user: Any) -> None:
    forged = {"id": str(uuid.uuid4()), "user": user.pk + 100, "created_at": "2000"}

    response = post(api, **forged)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] != forged["id"]
    assert body["user"] == user.pk


def test_bodies_must_be_json(api: APIClient) -> None:
    response = api.post(LIST, MANUAL_PAYLOAD)  # multipart/form-data

    assert response.status_code == 415
    assert response.json()["detail"].startswith("Unsupported media type")


def test_the_secret_appears_in_no_log_and_no_error(
    api: APIClient, created: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    made = post(api, hmac_secret=SECRET)
    refused = post(api, hmac_secret=SECRET, hmac_digest="md5", url="nope")
    changed = api.patch(
        detail(created["id"]), {"hmac_secret": SECRET, "event": ""}, format="json"
    )
    api.delete(made.json()["subscription"])

    assert made.status_code == 201
    assert refused.status_code == changed.status_code == 400
    assert SECRET not in refused.content.decode()
    assert SECRET not in changed.content.decode()
    assert "created" in caplog.text
    assert SECRET not in caplog.text
    assert created["hmac_secret"] not in caplog.text


# -- delivery -------------------------------------------------------------------------


def test_a_subscription_made_through_the_api_receives_signed_events(
    api: APIClient, user: Any, receiver: ListenerThread
) -> None:
    import thorn

    response = post(api, url=receiver.url("/article"), hmac_digest="sha512")
    subscription = response.json()

    thorn.Event("article.created").send({"title": "Hello"}, sender=user)

    (hook,) = receiver.wait_for(1)
    assert hook.path == "/article"
    assert hook.json() == {"title": "Hello"}
    assert hook.header("hook-event") == "article.created"
    assert hook.header("hook-subscription") == subscription["id"]
    verified = verify_request(
        hook.body, hook.headers, subscription["hmac_secret"], digest="sha512"
    )
    assert verified == "Hook-HMAC, Standard Webhooks"


def test_a_subscription_made_through_the_api_follows_its_payload_filters(
    api: APIClient, user: Any, receiver: ListenerThread
) -> None:
    import thorn

    post(
        api,
        url=receiver.url("/j"),
        payload_filters={"name": {"match": "startswith", "value": "J"}},
    )

    thorn.Event("article.created").send({"name": "Mary"}, sender=user)
    thorn.Event("article.created").send({"name": "Jane"}, sender=user)

    (hook,) = receiver.wait_for(1)
    assert b"Jane" in hook.body


# -- the OpenAPI schema ------------------------------------------------------------


@pytest.fixture
def schema() -> dict[str, Any]:
    response = APIClient().get(SCHEMA)
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


def test_schema_describes_only_thorns_endpoints(schema: dict[str, Any]) -> None:
    assert set(schema["paths"]) == {"/hooks/", "/hooks/{uuid}/"}
    assert set(schema["paths"]["/hooks/"]) == {"get", "post"}
    assert set(schema["paths"]["/hooks/{uuid}/"]) >= {"get", "put", "patch", "delete"}


def test_schema_has_exact_types(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    subscriber = components["Subscriber"]["properties"]
    assert subscriber["id"] == {"type": "string", "format": "uuid", "readOnly": True}
    assert subscriber["subscription"]["format"] == "uri"
    assert subscriber["subscription"]["readOnly"] is True
    assert subscriber["payload_filters"]["type"] == "object"

    def enum_of(prop: dict[str, Any]) -> list[str]:
        ref = prop.get("$ref") or prop["allOf"][0]["$ref"]
        return components[ref.rsplit("/", 1)[1]]["enum"]  # type: ignore[no-any-return]

    assert enum_of(subscriber["content_type"]) == [
        "application/json",
        "application/x-www-form-urlencoded",
    ]
    assert enum_of(subscriber["hmac_digest"]) == ["sha1", "sha256", "sha512"]
    request = components["SubscriberRequest"]
    assert set(request["required"]) == {"event", "url"}
    assert "id" not in request["properties"]
    assert request["properties"]["hmac_secret"]["minLength"] == 16
    assert request["properties"]["hmac_secret"]["maxLength"] == 255
    assert "pattern" in request["properties"]["event"]


def test_schema_keeps_secrets_off_the_list(schema: dict[str, Any]) -> None:
    listed = schema["paths"]["/hooks/"]["get"]["responses"]["200"]
    ref = listed["content"]["application/json"]["schema"]["items"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    assert "hmac_secret" not in schema["components"]["schemas"][name]["properties"]


def test_schema_documents_errors(schema: dict[str, Any]) -> None:
    one = schema["paths"]["/hooks/{uuid}/"]
    for method in ("get", "put", "patch", "delete"):
        assert {"401", "403", "404"} <= set(one[method]["responses"]), method
    assert "400" in schema["paths"]["/hooks/"]["post"]["responses"]
    assert "201" in schema["paths"]["/hooks/"]["post"]["responses"]
    assert "204" in one["delete"]["responses"]
    (param,) = one["get"]["parameters"]
    assert param["schema"] == {"type": "string", "format": "uuid"}


@pytest.mark.parametrize(
    "pattern", ["a", "*", "a.*", "*.b", "a.*.b", "**", "a..b", ".a", "a.", "a*", ""]
)
def test_schema_event_pattern_agrees_with_thorn_on_shapes(
    pattern: str,
) -> None:
    assert _schema_accepts(pattern) == _thorn_accepts(pattern)


def test_schema_event_pattern_agrees_with_thorn_on_single_characters() -> None:
    # White space and control characters are all in the BMP; the planes
    # above are sampled.
    for code in [*range(0x10000), *range(0x10000, 0x110000, 4093)]:
        if 0xD800 <= code <= 0xDFFF:
            continue  # no JSON text carries a lone surrogate
        word = f"a{chr(code)}b"
        assert _schema_accepts(word) == _thorn_accepts(word), hex(code)


def _schema_accepts(pattern: str) -> bool:
    from thorn.django.rest_framework.serializers import EVENT_PATTERN_REGEX

    return re.compile(EVENT_PATTERN_REGEX).fullmatch(pattern) is not None


def _thorn_accepts(pattern: str) -> bool:
    from thorn.subscribers import validate_pattern

    try:
        validate_pattern(pattern)
    except ValueError:
        return False
    return True


def test_schema_lists_the_event_choices_when_they_are_set() -> None:
    with override_settings(THORN_EVENT_CHOICES=["article.created", "user.*"]):
        schema = APIClient().get(SCHEMA).json()

    components = schema["components"]["schemas"]
    event = components["SubscriberRequest"]["properties"]["event"]
    ref = event.get("$ref") or event["allOf"][0]["$ref"]
    assert components[ref.rsplit("/", 1)[1]]["enum"] == ["article.created", "user.*"]


# -- schemathesis ---------------------------------------------------------------------


@pytest.fixture
def token_header(django_user_model: Any) -> dict[str, str]:
    owner = django_user_model.objects.create_user("schemathesis")
    token = Token.objects.create(user=owner)
    return {"Authorization": f"Token {token.key}"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_operation_conforms_to_the_schema(
    token_header: dict[str, str], django_user_model: Any
) -> None:
    """Schemathesis: 30 valid cases per operation, 30 invalid bodies per write.

    Checks: no 5xx, documented status codes and content types, answers that
    match their schema. Half the cases address an existing subscription of
    the user, so the 200s are exercised as well as the 404s. Invalid cases
    keep a well-formed id: a malformed one never reaches Thorn's views
    (Django's ``uuid`` converter answers with the project's 404 page).
    """
    import schemathesis
    from django.core.handlers.wsgi import WSGIHandler
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    owner = django_user_model.objects.get(username="schemathesis")
    model = current_app().Subscriber
    existing = uuid.uuid4()

    def ensure_existing() -> None:
        model.objects.get_or_create(
            uuid=existing,
            defaults={"event": "article.*", "url": "https://e.com/", "user": owner},
        )

    def fuzz(operation: Any, mode: Any) -> int:
        """Run up to 30 generated cases against ``operation``; how many ran."""
        ran = 0
        fixed = {"uuid": str(existing)} if mode.is_negative else None
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, use_existing=st.booleans())
        def run(case: Any, use_existing: bool) -> None:
            nonlocal ran
            if case.path_parameters and (use_existing or mode.is_negative):
                ensure_existing()  # a DELETE case may have removed it
                case.path_parameters["uuid"] = str(existing)
            case.call_and_validate(headers=token_header, checks=checks)
            ran += 1

        run()
        return ran

    api = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())
    ran: dict[str, int] = {}
    for result in api.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        ran[label] = fuzz(operation, schemathesis.GenerationMode.POSITIVE)
        if operation.method.upper() in ("POST", "PUT", "PATCH"):
            ran[f"{label} (invalid)"] = fuzz(
                operation, schemathesis.GenerationMode.NEGATIVE
            )

    print(f"schemathesis cases: {sum(ran.values())} {ran}")
    assert len(ran) == 9, ran
    assert all(count >= 10 for count in ran.values()), ran
