"""Tests for thorn.utils.hmac: Hook-HMAC signing and its helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

import itsdangerous
import pytest

from thorn.exceptions import ImproperlyConfigured
from thorn.utils.hmac import (
    DIGESTS,
    SECRET_CHARS,
    compat_sign,
    get_digest,
    hmac_digest,
    random_secret,
    sign,
    verify,
)

# The secret of the manual's consumer example.
ARTICLE_SECRET = "C=JTX)v3~dQCl];[_h[{q{CScm}oglLoe&>ga:>R~jR$.x?t|kW!FH:s0|4bu:11"
BODY = b'{"event": "article.changed", "ref": "https://example.com/article/1"}'


def manual_verify(
    hmac_header: bytes, digest_method: str, secret: bytes, message: bytes
) -> bool:
    """The verify() of the manual's "Example consumer endpoint", verbatim."""
    digestmod = getattr(hashlib, digest_method)
    signed = base64.b64encode(
        hmac.new(secret, message, digestmod).digest(),
    ).strip()
    return hmac.compare_digest(signed, hmac_header)


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
def test_sign_passes_the_manuals_consumer_example_verify(digest: str) -> None:
    signature = sign(digest, ARTICLE_SECRET, BODY)
    assert manual_verify(signature.encode(), digest, ARTICLE_SECRET.encode(), BODY)


def test_sign_is_standard_base64_with_padding_of_the_hmac() -> None:
    expected = hmac.new(b"key", b"message", hashlib.sha256).digest()
    assert sign("sha256", "key", "message") == base64.b64encode(expected).decode()
    assert sign("sha256", "key", "message").endswith("=")


def test_sign_treats_text_as_utf8_and_accepts_bytes() -> None:
    assert sign("sha256", "clé", "día") == sign(
        "sha256", "clé".encode(), "día".encode()
    )


@pytest.mark.parametrize("digest", sorted(DIGESTS))
@pytest.mark.parametrize("key", [b"", b"k", b"0123456789" * 30])
def test_hmac_digest_equals_the_standard_library_for_every_digest(
    digest: str, key: bytes
) -> None:
    expected = hmac.digest(key, b"head.tail", getattr(hashlib, digest))
    assert hmac_digest(digest, key, b"head.", b"tail") == expected
    assert hmac_digest(digest, key, b"head.tail") == expected


def test_hmac_digest_gives_the_same_result_when_called_again() -> None:
    first = hmac_digest("sha256", "secret", b"one")
    assert hmac_digest("sha256", "secret", b"two") != first
    assert hmac_digest("sha256", "secret", b"one") == first


def test_get_digest_returns_the_hashlib_constructor() -> None:
    assert get_digest("sha1") is hashlib.sha1
    assert get_digest("sha256") is hashlib.sha256
    assert get_digest("sha512") is hashlib.sha512
    assert get_digest(" SHA256 ") is hashlib.sha256


@pytest.mark.parametrize("name", ["md5", "sha", "shake_128", "", "rot13"])
def test_get_digest_refuses_md5_and_unknown_names_listing_the_allowed_ones(
    name: str,
) -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        get_digest(name)
    message = str(excinfo.value)
    assert "sha256" in message
    assert "blake2b" in message


def test_verify_accepts_a_correct_signature_and_surrounding_whitespace() -> None:
    signature = sign("sha256", ARTICLE_SECRET, BODY)
    assert verify(signature, "sha256", ARTICLE_SECRET, BODY)
    assert verify(f"  {signature}\n", "sha256", ARTICLE_SECRET, BODY)
    assert verify(signature.encode(), "sha256", ARTICLE_SECRET, BODY)


@pytest.mark.parametrize(
    "received",
    [
        None,
        "",
        "not base64 at all",
        "ünïcödé",
        b"\xff\xfe",
        "QqV7a33oq+C8VWhx0NAhtuD65bPMu4tLhlq2foxA3pM=",
    ],
)
def test_verify_returns_false_for_wrong_or_malformed_signatures(
    received: str | bytes | None,
) -> None:
    assert verify(received, "sha256", ARTICLE_SECRET, BODY) is False


def test_verify_returns_false_for_another_key_digest_or_body() -> None:
    signature = sign("sha256", ARTICLE_SECRET, BODY)
    assert not verify(signature, "sha256", "other secret", BODY)
    assert not verify(signature, "sha512", ARTICLE_SECRET, BODY)
    assert not verify(signature, "sha256", ARTICLE_SECRET, BODY + b" ")


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify(sign("sha1", "k", b"m"), "sha1", "k", b"m")
    assert not verify("wrong", "sha1", "k", b"m")
    assert len(calls) == 2


def test_compat_sign_equals_itsdangerous_default_signer() -> None:
    # itsdangerous' Signer defaults to SHA-1.
    signer = itsdangerous.Signer(ARTICLE_SECRET)
    assert compat_sign("sha1", ARTICLE_SECRET, BODY) == (
        signer.get_signature(BODY).decode()
    )


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512", "blake2b"])
def test_compat_sign_equals_itsdangerous_signer_with_the_same_digest(
    digest: str,
) -> None:
    signer = itsdangerous.Signer(ARTICLE_SECRET, digest_method=getattr(hashlib, digest))
    assert compat_sign(digest, ARTICLE_SECRET, BODY) == (
        signer.get_signature(BODY).decode()
    )


def test_compat_sign_follows_the_1_3_0_changelog_recipe() -> None:
    key = hashlib.sha256(
        b"itsdangerous.Signer" + b"signer" + ARTICLE_SECRET.encode()
    ).digest()
    digest = hmac.new(key, BODY, digestmod=hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).decode().replace("=", "")
    assert compat_sign("sha256", ARTICLE_SECRET, BODY) == expected
    assert "=" not in expected


def test_random_secret_has_the_length_and_alphabet_of_the_manual() -> None:
    expected = string.ascii_letters + string.digits + string.punctuation
    assert expected == SECRET_CHARS
    secret = random_secret()
    assert len(secret) == 64
    assert set(secret) <= set(SECRET_CHARS)
    assert len(random_secret(12)) == 12
    assert set(random_secret(50, chars="ab")) <= {"a", "b"}


def test_random_secret_draws_with_secrets_choice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(secrets, "choice", lambda chars: chars[-1])
    assert random_secret(3, chars="xyz") == "zzz"


def test_random_secret_refuses_an_empty_length_or_alphabet() -> None:
    with pytest.raises(ValueError, match="length"):
        random_secret(0)
    with pytest.raises(ValueError, match="alphabet"):
        random_secret(8, chars="")


def test_no_secret_appears_in_the_error_for_a_bad_digest() -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        sign("md5", ARTICLE_SECRET, BODY)
    assert ARTICLE_SECRET not in str(excinfo.value)
    assert BODY.decode() not in str(excinfo.value)
