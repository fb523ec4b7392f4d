"""The Thorn app: settings with documented defaults, plug points by import path."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import thorn
from thorn import Event, Thorn
from thorn.app import current_app
from thorn.conf import DEFAULTS, Settings, import_string
from thorn.exceptions import ImproperlyConfigured
from thorn.utils.hmac import compat_sign, sign, verify


def test_documented_defaults() -> None:
    s = Settings({})
    assert s.THORN_CHUNKSIZE == 10
    assert s.THORN_DISPATCHER == "default"
    assert s.THORN_EVENT_TIMEOUT == 3.0
    assert s.THORN_RETRY is True
    assert s.THORN_RETRY_DELAY == 60.0
    assert s.THORN_RETRY_MAX == 10
    assert s.THORN_SIGNAL_HONORS_TRANSACTION is True  # Thorn 2, as announced
    assert s.THORN_HMAC_SIGNER == "thorn.utils.hmac:sign"


def test_settings_come_from_mappings_or_objects() -> None:
    class Conf:
        THORN_CHUNKSIZE = 99

    assert Settings(Conf()).THORN_CHUNKSIZE == 99
    assert Settings({"THORN_CHUNKSIZE": 5}).THORN_CHUNKSIZE == 5
    with pytest.raises(AttributeError, match="unknown setting"):
        Settings({}).THORN_NOPE  # noqa: B018


def test_configure_rejects_unknown_names() -> None:
    with pytest.raises(ImproperlyConfigured, match="THORN_TIMEOUT"):
        Settings({}).configure(THORN_TIMEOUT=1)


def test_every_default_is_documented() -> None:
    from pathlib import Path

    docs = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    missing = [name for name in DEFAULTS if name not in docs]
    assert missing == []


def test_import_string_names_the_setting_on_failure() -> None:
    assert import_string("thorn.utils.hmac:sign") is sign
    assert import_string("thorn.utils.hmac.sign") is sign
    with pytest.raises(ImproperlyConfigured, match="THORN_HMAC_SIGNER"):
        import_string("thorn.utils.hmac:nope", setting="THORN_HMAC_SIGNER")
    with pytest.raises(ImproperlyConfigured, match="not an import path"):
        import_string("nodots")


def test_hmac_signer_setting_selects_the_signature(
    make_app: Any, receiver: Any
) -> None:
    make_app(THORN_HMAC_SIGNER="thorn.utils.hmac:compat_sign", THORN_RETRY=False)
    Event("x.y", subscribers=[{"url": receiver.url(), "hmac_secret": "k"}]).send({})
    (hook,) = receiver.wait_for(1)
    assert hook.header("hook-hmac") == compat_sign("sha256", "k", hook.body)
    assert not verify(hook.header("hook-hmac"), "sha256", "k", hook.body)


def test_codecs_setting_adds_a_content_type(make_app: Any, receiver: Any) -> None:
    make_app(
        THORN_CODECS={"text/plain": lambda data: f"{data['n']}!"},
        THORN_RETRY=False,
    )
    Event(
        "x.y", subscribers=[{"url": receiver.url(), "content_type": "text/plain"}]
    ).send({"n": 3})
    assert receiver.wait_for(1)[0].body == b"3!"


def test_dispatcher_follows_the_setting(make_app: Any) -> None:
    app = make_app()
    assert type(app.dispatcher).__name__ == "DefaultDispatcher"
    app.configure(THORN_DISPATCHER="disabled")
    assert type(app.dispatcher).__name__ == "DisabledDispatcher"
    assert Thorn(dispatcher="disabled", set_as_current=False).dispatcher is not None


def test_invalid_validator_setting_is_explained(make_app: Any) -> None:
    app = make_app(THORN_RECIPIENT_VALIDATORS="thorn.validators:block_internal_ips")
    with pytest.raises(ImproperlyConfigured, match="must be a list"):
        app.recipient_validators  # noqa: B018


def test_validators_setting_accepts_objects_paths_and_dicts(make_app: Any) -> None:
    from thorn.validators import ensure_port

    app = make_app(
        THORN_RECIPIENT_VALIDATORS=[
            ensure_port(443),
            "test_app:custom_validator",
            {"name": "ensure_protocol", "args": ["https"]},
        ]
    )
    assert len(app.recipient_validators) == 3
    assert app.recipient_validators[1] is custom_validator


def custom_validator(recipient: Any) -> None:
    """Referenced by import path above."""


def test_the_current_app_is_per_thread_with_a_default(make_app: Any) -> None:
    app = make_app()
    assert current_app() is app
    seen: list[Any] = []
    t = threading.Thread(target=lambda: seen.append(current_app()))
    t.start()
    t.join()
    assert isinstance(seen[0], Thorn)


def test_bound_classes_use_their_app(make_app: Any) -> None:
    app = make_app()
    other = Thorn(set_as_current=False, settings={"THORN_EVENT_TIMEOUT": 9})
    event = other.Event("x.y")
    assert event._app is other
    assert app.Event("x.y")._app is app
    other.close()


def test_public_names_are_exported_and_sorted() -> None:
    names = [n for n in thorn.__all__ if n != "__version__"]
    assert names == sorted(names)
    for name in thorn.__all__:
        assert hasattr(thorn, name), name
