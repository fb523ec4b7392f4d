"""Tests for thorn.receiver: checking the signatures of received webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from thorn.exceptions import ImproperlyConfigured, SignatureError
from thorn.receiver import verify_hook_hmac, verify_request, verify_standard
from thorn.signing import Signer, standard_webhooks_secret
from thorn.utils.hmac import compat_sign, sign

SECRET = "C=JTX)v3~dQCl];[_h[{q{CScm}oglLoe&>ga:>R~jR$.x?t|kW!FH:s0|4bu:11"
OTHER_SECRET = "an-older-secret-still-accepted"
BODY = b'{"event":"article.changed","ref":"https://example.com/a/1"}'
NOW = 1_700_000_000

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_HEADERS = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}
VECTOR_PAYLOAD = b'{"test": 2432232314}'


def signed_headers(
    secret: str | None = SECRET, *, timestamp: int = NOW, **kwargs: Any
) -> dict[str, str]:
    return Signer(**kwargs).headers(
        body=BODY, msg_id="msg_1", timestamp=timestamp, secret=secret, digest="sha256"
    )


def failure(call: Any, *args: Any, **kwargs: Any) -> str:
    """Run ``call`` expecting SignatureError; return its message, checked clean."""
    with pytest.raises(SignatureError) as excinfo:
        call(*args, **kwargs)
    message = str(excinfo.value)
    for secret in (SECRET, OTHER_SECRET, VECTOR_SECRET, VECTOR_SECRET[6:]):
        assert secret not in message
    headers = signed_headers()
    signatures = [headers["Hook-HMAC"], headers["webhook-signature"][3:]]
    for signature in signatures:
        assert signature not in message
    assert BODY.decode() not in message
    return message


def test_a_request_signed_by_thorn_verifies_with_both_schemes() -> None:
    assert (
        verify_request(BODY, signed_headers(), SECRET, now=NOW)
        == "Hook-HMAC, Standard Webhooks"
    )


def test_header_names_are_matched_ignoring_case() -> None:
    headers = {name.upper(): value for name, value in signed_headers().items()}
    assert verify_request(BODY, headers, SECRET, now=NOW) == (
        "Hook-HMAC, Standard Webhooks"
    )
    verify_standard(BODY, headers, SECRET, now=NOW)


def test_a_text_body_is_verified_as_utf8() -> None:
    verify_request(BODY.decode(), signed_headers(), SECRET, now=NOW)


def test_verify_hook_hmac_accepts_the_manuals_consumer_formula() -> None:
    header = base64.b64encode(
        hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    ).decode()
    verify_hook_hmac(BODY, header, SECRET)
    verify_hook_hmac(BODY, f" {header}\n", SECRET)


def test_verify_hook_hmac_uses_the_given_digest_and_signer() -> None:
    verify_hook_hmac(BODY, sign("sha512", SECRET, BODY), SECRET, digest="sha512")
    verify_hook_hmac(
        BODY, compat_sign("sha256", SECRET, BODY), SECRET, signer=compat_sign
    )
    assert "sha256" in failure(
        verify_hook_hmac, BODY, sign("sha512", SECRET, BODY), SECRET
    )


def test_verify_hook_hmac_accepts_any_of_several_secrets() -> None:
    header = sign("sha256", OTHER_SECRET, BODY)
    verify_hook_hmac(BODY, header, [SECRET, OTHER_SECRET])
    failure(verify_hook_hmac, BODY, header, [SECRET])


@pytest.mark.parametrize("header", [None, "", "   "])
def test_verify_hook_hmac_reports_a_missing_header(header: str | None) -> None:
    assert "missing" in failure(verify_hook_hmac, BODY, header, SECRET)


@pytest.mark.parametrize("header", ["garbage", "ünïcödé", "QUJD"])
def test_verify_hook_hmac_reports_a_mismatch(header: str) -> None:
    assert "does not match" in failure(verify_hook_hmac, BODY, header, SECRET)


def test_a_tampered_body_fails_both_schemes() -> None:
    headers = signed_headers()
    assert "Hook-HMAC" in failure(verify_request, BODY + b" ", headers, SECRET, now=NOW)
    del headers["Hook-HMAC"]
    assert "webhook-signature" in failure(
        verify_request, BODY + b" ", headers, SECRET, now=NOW
    )


def test_verify_standard_checks_the_published_test_vector() -> None:
    verify_standard(VECTOR_PAYLOAD, VECTOR_HEADERS, VECTOR_SECRET, now=1614265330)


def test_verify_standard_accepts_what_the_standardwebhooks_library_signs() -> None:
    when = datetime.fromtimestamp(NOW, tz=UTC)
    whsec = standard_webhooks_secret(SECRET)
    signature = Webhook(whsec).sign("msg_9", when, BODY.decode())
    headers = {
        "Webhook-Id": "msg_9",
        "Webhook-Timestamp": str(NOW),
        "Webhook-Signature": signature,
    }
    verify_standard(BODY, headers, SECRET, now=NOW)
    verify_standard(BODY, headers, whsec, now=NOW)


def test_verify_standard_allows_the_tolerance_and_not_a_second_more() -> None:
    headers = signed_headers()
    verify_standard(BODY, headers, SECRET, now=NOW + 300)
    verify_standard(BODY, headers, SECRET, now=NOW - 300)
    verify_standard(BODY, headers, SECRET, now=NOW + 30, tolerance=30)
    assert "301 s old" in failure(verify_standard, BODY, headers, SECRET, now=NOW + 301)
    assert "in the future" in failure(
        verify_standard, BODY, headers, SECRET, now=NOW - 301
    )


def test_verify_standard_uses_the_current_time_by_default() -> None:
    assert "old" in failure(verify_standard, BODY, signed_headers(), SECRET)


@pytest.mark.parametrize(
    "missing", ["webhook-id", "webhook-timestamp", "webhook-signature"]
)
def test_verify_standard_names_a_missing_header(missing: str) -> None:
    headers = signed_headers()
    del headers[missing]
    assert missing in failure(verify_standard, BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize("timestamp", ["soon", "1.7e9", "-5", "١٢٣"])
def test_verify_standard_refuses_a_malformed_timestamp(timestamp: str) -> None:
    headers = signed_headers() | {"webhook-timestamp": timestamp}
    assert "Unix time" in failure(verify_standard, BODY, headers, SECRET, now=NOW)


def test_verify_standard_needs_a_v1_signature() -> None:
    headers = signed_headers()
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    assert "no well-formed v1" in failure(
        verify_standard, BODY, headers, SECRET, now=NOW
    )


def test_verify_standard_skips_malformed_entries_and_finds_the_good_one() -> None:
    headers = signed_headers()
    good = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1 v1,*** v2,abc nocomma {good}"
    verify_standard(BODY, headers, SECRET, now=NOW)


def test_a_rotated_signature_verifies_with_either_secret() -> None:
    headers = Signer().headers(
        body=BODY,
        msg_id="msg_1",
        timestamp=NOW,
        secret=SECRET,
        digest="sha256",
        extra_secrets=[OTHER_SECRET],
    )
    verify_standard(BODY, headers, SECRET, now=NOW)
    verify_standard(BODY, headers, OTHER_SECRET, now=NOW)
    verify_standard(BODY, headers, ["unrelated", OTHER_SECRET], now=NOW)
    assert "2 v1 signature(s)" in failure(
        verify_standard, BODY, headers, "unrelated", now=NOW
    )


def test_verify_request_with_only_hook_hmac_says_so() -> None:
    headers = {"Hook-HMAC": sign("sha256", SECRET, BODY)}
    assert verify_request(BODY, headers, SECRET) == "Hook-HMAC"


def test_verify_request_with_only_standard_webhooks_says_so() -> None:
    headers = signed_headers()
    del headers["Hook-HMAC"]
    assert verify_request(BODY, headers, SECRET, now=NOW) == "Standard Webhooks"


def test_verify_request_refuses_an_unsigned_request() -> None:
    unsigned = signed_headers(secret=None)
    assert "no signature" in failure(verify_request, BODY, unsigned, SECRET, now=NOW)
    assert "no signature" in failure(verify_request, BODY, {}, SECRET)


def test_verify_request_can_require_standard_webhooks_against_replays() -> None:
    headers = {"Hook-HMAC": sign("sha256", SECRET, BODY)}
    assert "require_standard" in failure(
        verify_request, BODY, headers, SECRET, require_standard=True
    )
    verify_request(BODY, signed_headers(), SECRET, now=NOW, require_standard=True)


def test_verify_request_checks_a_compat_hook_hmac() -> None:
    headers = signed_headers(hmac_signer=compat_sign)
    assert verify_request(BODY, headers, SECRET, now=NOW, signer=compat_sign) == (
        "Hook-HMAC, Standard Webhooks"
    )
    failure(verify_request, BODY, headers, SECRET, now=NOW)


@pytest.mark.parametrize("secret", ["", b"", [], ["ok", ""]])
def test_an_empty_secret_is_a_configuration_error(secret: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="secret"):
        verify_request(BODY, signed_headers(), secret, now=NOW)
