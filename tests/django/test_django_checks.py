"""Django system checks of the THORN_* settings: every id fires, with a hint."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

from thorn.validators import block_internal_ips, ensure_protocol

#: Settings none of the checks object to, deployment checks included.
GOOD = {
    "THORN_DISPATCHER": "default",
    "THORN_HMAC_SIGNER": "thorn.utils.hmac:sign",
    "THORN_RECIPIENT_VALIDATORS": None,
    "THORN_SUBSCRIBERS": {
        "user.created": "https://example.com/hook",
        "article.*": [
            {"url": "https://example.com/a", "content_type": "application/json"},
            lambda event, sender=None, **kwargs: [],
        ],
    },
    "THORN_EVENT_CHOICES": ["user.created", ("article.*", "Articles")],
    "THORN_EVENT_TIMEOUT": 2,
    "THORN_RETRY_DELAY": 0,
    "THORN_RETRY_MAX": 0,
    "THORN_PAYLOAD_MAX_SIZE": 1000,
    "THORN_CODECS": {"application/json": "thorn.utils.json:dumps"},
    "THORN_SUBSCRIBER_MODEL": "thorn.Subscriber",
}


def thorn_messages(**settings: Any) -> list[Any]:
    with override_settings(**{**GOOD, **settings}):
        return list(run_checks(tags=["thorn"], include_deployment_checks=True))


def ids(**settings: Any) -> list[str]:
    return [message.id for message in thorn_messages(**settings)]


def test_good_settings_raise_no_check_message() -> None:
    assert thorn_messages() == []


def test_every_message_has_a_hint_and_a_stable_id() -> None:
    messages = thorn_messages(
        THORN_DISPATCHER="nope",
        THORN_HMAC_SIGNER="thorn.utils.hmac:nothing",
        THORN_RECIPIENT_VALIDATORS="not a list",
        THORN_SUBSCRIBERS=["a list"],
        THORN_EVENT_CHOICES="user.created",
        THORN_EVENT_TIMEOUT=0,
        THORN_CODECS=["json"],
        THORN_SUBSCRIBER_MODEL="thorn.Nothing",
        THORN_DRF_PERMISSION_CLASSES=["rest_framework.permissions:Nothing"],
    )
    assert sorted(m.id for m in messages) == [
        "thorn.E001",
        "thorn.E002",
        "thorn.E003",
        "thorn.E004",
        "thorn.E005",
        "thorn.E006",
        "thorn.E007",
        "thorn.E008",
        "thorn.E009",
    ]
    for message in messages:
        assert message.hint, message
        assert message.is_serious()


@pytest.mark.parametrize(
    "value", ["nope", "thorn.dispatch.nothing:Dispatcher", 42, None]
)
def test_an_unknown_dispatcher_is_e001(value: Any) -> None:
    assert ids(THORN_DISPATCHER=value) == ["thorn.E001"]


def test_dispatcher_aliases_paths_and_classes_pass() -> None:
    from thorn.dispatch.disabled import Dispatcher

    for value in ("disabled", "thorn.dispatch.default:Dispatcher", Dispatcher):
        assert ids(THORN_DISPATCHER=value) == []


@pytest.mark.parametrize(
    "value", ["thorn.utils.hmac:nothing", "nomodule:sign", "thorn.conf:DEFAULTS", 3]
)
def test_a_signer_that_cannot_be_imported_or_called_is_e002(value: Any) -> None:
    assert ids(THORN_HMAC_SIGNER=value) == ["thorn.E002"]


def test_the_compat_signer_is_w001() -> None:
    from thorn.utils.hmac import compat_sign

    for value in ("thorn.utils.hmac:compat_sign", compat_sign):
        (message,) = thorn_messages(THORN_HMAC_SIGNER=value)
        assert message.id == "thorn.W001"
        assert "thorn.utils.hmac:sign" in message.hint
        assert not message.is_serious()


@pytest.mark.parametrize(
    "value", ["thorn.validators:ensure_port", ["nomodule:check"], [42], {"a": 1}]
)
def test_invalid_recipient_validators_are_e003(value: Any) -> None:
    assert ids(THORN_RECIPIENT_VALIDATORS=value) == ["thorn.E003"]


def test_validators_without_block_internal_ips_are_w002_on_deploy_only() -> None:
    weak = [ensure_protocol("https")]
    assert ids(THORN_RECIPIENT_VALIDATORS=weak) == ["thorn.W002"]
    with override_settings(**{**GOOD, "THORN_RECIPIENT_VALIDATORS": weak}):
        assert list(run_checks(tags=["thorn"])) == []
    strong = [block_internal_ips(), ensure_protocol("https")]
    assert ids(THORN_RECIPIENT_VALIDATORS=strong) == []


@pytest.mark.parametrize(
    "value",
    [
        ["https://example.com"],
        {"user..created": "https://example.com"},
        {"user.cre*ted": "https://example.com"},
        {"user.created": {"url": "https://example.com", "colour": "red"}},
        {"user.created": {"content_type": "application/json"}},
        {"user.created": "not a url"},
        {"user.created": ["https://example.com", 42]},
        {"user.created": [{"url": "ftp//broken"}]},
    ],
)
def test_bad_static_subscribers_are_e004(value: Any) -> None:
    assert set(ids(THORN_SUBSCRIBERS=value)) == {"thorn.E004"}


def test_e004_never_shows_a_subscriber_secret() -> None:
    (message,) = thorn_messages(
        THORN_SUBSCRIBERS={
            "a.b": {"url": "https://example.com", "hmac_secret": "s3cr3t", "x": 1}
        }
    )
    assert "s3cr3t" not in f"{message.msg} {message.hint}"


@pytest.mark.parametrize(
    "value",
    [
        "user.created",
        {"user.created": "Users"},
        ["user..created"],
        [("user.created", "label", "extra")],
        [42],
    ],
)
def test_bad_event_choices_are_e005(value: Any) -> None:
    assert set(ids(THORN_EVENT_CHOICES=value)) == {"thorn.E005"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("THORN_EVENT_TIMEOUT", 0),
        ("THORN_EVENT_TIMEOUT", -1.5),
        ("THORN_EVENT_TIMEOUT", "3"),
        ("THORN_RETRY_DELAY", -1),
        ("THORN_RETRY_MAX", 2.5),
        ("THORN_RETRY_MAX", True),
        ("THORN_RETRY_BACKOFF_MAX", 0),
        ("THORN_PAYLOAD_MAX_SIZE", 0),
        ("THORN_PAYLOAD_MAX_SIZE", None),
    ],
)
def test_numbers_out_of_range_are_e006(name: str, value: Any) -> None:
    (message,) = thorn_messages(**{name: value})
    assert message.id == "thorn.E006"
    assert name in message.msg
    assert "default" in message.hint


@pytest.mark.parametrize(
    "value",
    [
        ["application/json"],
        {"json": "thorn.utils.json:dumps"},
        {"application/json": "thorn.utils.json:nothing"},
        {"application/json": 42},
    ],
)
def test_bad_codecs_are_e007(value: Any) -> None:
    assert ids(THORN_CODECS=value) == ["thorn.E007"]


@pytest.mark.parametrize(
    "value", ["thorn.Nothing", "nothing", "thorn.django.models:Nothing", "auth.User"]
)
def test_a_subscriber_model_that_cannot_be_used_is_e008(value: str) -> None:
    assert ids(THORN_SUBSCRIBER_MODEL=value) == ["thorn.E008"]


def test_the_checks_run_from_manage_py_check_with_the_thorn_tag() -> None:
    out = StringIO()
    with override_settings(**GOOD):
        call_command("check", "--tag", "thorn", "--deploy", stdout=out)
    assert "no issues" in out.getvalue()
    with (
        override_settings(**{**GOOD, "THORN_DISPATCHER": "nope"}),
        pytest.raises(SystemCheckError, match=r"thorn\.E001"),
    ):
        call_command("check", "--tag", "thorn", stdout=StringIO())


@pytest.mark.parametrize(
    "value",
    ["rest_framework.permissions.IsAdminUser", ["rest_framework.nope:Nope"], [42]],
)
def test_bad_drf_permission_classes_are_e009(value: Any) -> None:
    assert ids(THORN_DRF_PERMISSION_CLASSES=value) == ["thorn.E009"]


def test_drf_permission_classes_by_path_or_class_pass() -> None:
    from rest_framework.permissions import IsAdminUser

    assert (
        ids(THORN_DRF_PERMISSION_CLASSES=["rest_framework.permissions.IsAdminUser"])
        == []
    )
    assert ids(THORN_DRF_PERMISSION_CLASSES=[IsAdminUser]) == []
