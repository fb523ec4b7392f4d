"""Tests for thorn.signing: Hook-HMAC and Standard Webhooks request headers."""

from __future__ import annotations

import base64
import dataclasses
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from thorn.exceptions import ImproperlyConfigured
from thorn.signing import (
    Signer,
    sign_standard,
    standard_webhooks_key,
    standard_webhooks_secret,
)
from thorn.utils.hmac import compat_sign, sign

# The test vector published with the Standard Webhooks libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_PAYLOAD = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "C=JTX)v3~dQCl];[_h[{q{CScm}oglLoe&>ga:>R~jR$.x?t|kW!FH:s0|4bu:11"
BODY = b'{"event":"article.changed","ref":"https://example.com/a/1"}'


def test_sign_standard_reproduces_the_published_test_vector() -> None:
    signature = sign_standard(
        VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_PAYLOAD, [VECTOR_SECRET]
    )
    assert signature == VECTOR_SIGNATURE


def test_the_published_test_vector_agrees_with_the_standardwebhooks_library() -> None:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(VECTOR_TIMESTAMP, tz=UTC)
    made = Webhook(VECTOR_SECRET).sign(VECTOR_ID, when, VECTOR_PAYLOAD.decode())
    assert made == VECTOR_SIGNATURE


def test_the_standardwebhooks_library_verifies_our_headers() -> None:
    now = int(time.time())
    headers = Signer().headers(
        body=BODY, msg_id="msg_1", timestamp=now, secret=SECRET, digest="sha256"
    )
    Webhook(standard_webhooks_secret(SECRET)).verify(BODY, headers)


def test_the_standardwebhooks_library_verifies_headers_made_with_a_whsec_secret() -> (
    None
):
    now = int(time.time())
    headers = Signer().headers(
        body=BODY,
        msg_id="msg_2",
        timestamp=now,
        secret=VECTOR_SECRET,
        digest="sha256",
    )
    Webhook(VECTOR_SECRET).verify(BODY, headers)


def test_the_standardwebhooks_library_refuses_a_tampered_body() -> None:
    headers = Signer().headers(
        body=BODY,
        msg_id="msg_3",
        timestamp=int(time.time()),
        secret=SECRET,
        digest="sha256",
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(standard_webhooks_secret(SECRET)).verify(BODY + b" ", headers)


def test_during_rotation_both_the_old_and_the_new_secret_verify() -> None:
    old, new = "old secret", "whsec_" + base64.b64encode(b"n" * 24).decode()
    headers = Signer().headers(
        body=BODY,
        msg_id="msg_4",
        timestamp=int(time.time()),
        secret=new,
        digest="sha256",
        extra_secrets=[old],
    )
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2
    assert all(entry.startswith("v1,") for entry in entries)
    Webhook(standard_webhooks_secret(new)).verify(BODY, headers)
    Webhook(standard_webhooks_secret(old)).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(standard_webhooks_secret("a third secret")).verify(BODY, headers)


def test_sign_standard_writes_one_entry_per_secret_in_order() -> None:
    both = sign_standard("m", 1, BODY, ["a", "b"])
    assert both == " ".join(
        [sign_standard("m", 1, BODY, ["a"]), sign_standard("m", 1, BODY, ["b"])]
    )


def test_sign_standard_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        sign_standard("m", 1, BODY, [])


def test_standard_webhooks_key_decodes_whsec_secrets() -> None:
    key = b"\x00\x01binary key\xff"
    encoded = base64.b64encode(key).decode()
    assert standard_webhooks_key("whsec_" + encoded) == key
    assert standard_webhooks_key("whsec_" + encoded.rstrip("=")) == key
    assert standard_webhooks_key(b"whsec_" + encoded.encode()) == key


def test_standard_webhooks_key_uses_other_secrets_as_utf8_bytes() -> None:
    assert standard_webhooks_key("plain sécret") == "plain sécret".encode()
    assert standard_webhooks_key(b"raw") == b"raw"


@pytest.mark.parametrize("secret", ["whsec_not*base64!", "whsec_", ""])
def test_standard_webhooks_key_refuses_bad_secrets_without_showing_them(
    secret: str,
) -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        standard_webhooks_key(secret)
    message = str(excinfo.value)
    assert "not*base64" not in message
    assert "secret" in message


def test_standard_webhooks_secret_names_the_same_key() -> None:
    whsec = standard_webhooks_secret(SECRET)
    assert whsec.startswith("whsec_")
    assert standard_webhooks_key(whsec) == SECRET.encode()
    assert standard_webhooks_secret(VECTOR_SECRET) == VECTOR_SECRET
    assert standard_webhooks_secret(whsec) == whsec


def test_headers_hold_both_signatures_the_id_and_the_timestamp() -> None:
    headers = Signer().headers(
        body=BODY, msg_id="msg_5", timestamp=1700000000, secret=SECRET, digest="sha512"
    )
    assert headers == {
        "Hook-HMAC": sign("sha512", SECRET, BODY),
        "webhook-id": "msg_5",
        "webhook-timestamp": "1700000000",
        "webhook-signature": sign_standard("msg_5", 1700000000, BODY, [SECRET]),
    }


def test_headers_without_a_secret_have_only_the_id_and_the_timestamp() -> None:
    headers = Signer().headers(
        body=BODY, msg_id="msg_6", timestamp=1700000000, secret=None, digest="sha256"
    )
    assert headers == {"webhook-id": "msg_6", "webhook-timestamp": "1700000000"}


def test_headers_use_the_configured_hmac_signer() -> None:
    headers = Signer(hmac_signer=compat_sign).headers(
        body=BODY, msg_id="m", timestamp=1, secret=SECRET, digest="sha256"
    )
    assert headers["Hook-HMAC"] == compat_sign("sha256", SECRET, BODY)


def test_headers_accept_a_signer_that_returns_bytes() -> None:
    def old_style(digest: str, key: str | bytes, message: bytes) -> str:
        return sign(digest, key, message).encode()  # type: ignore[return-value]

    headers = Signer(hmac_signer=old_style).headers(
        body=BODY, msg_id="m", timestamp=1, secret=SECRET, digest="sha256"
    )
    assert headers["Hook-HMAC"] == sign("sha256", SECRET, BODY)


def test_headers_refuse_an_empty_secret() -> None:
    with pytest.raises(ImproperlyConfigured, match="None to send unsigned"):
        Signer().headers(body=BODY, msg_id="m", timestamp=1, secret="", digest="sha1")


@pytest.mark.parametrize("msg_id", ["a\r\nX-Injected: 1", "tab\there"])
def test_headers_refuse_a_message_id_with_control_characters(msg_id: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        Signer().headers(
            body=BODY, msg_id=msg_id, timestamp=1, secret=SECRET, digest="sha256"
        )


def test_a_signer_is_frozen() -> None:
    signer = Signer()
    with pytest.raises(dataclasses.FrozenInstanceError):
        signer.hmac_signer = compat_sign  # type: ignore[misc]
    assert Signer() == signer
