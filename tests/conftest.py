"""Fixtures: real HTTP receivers on 127.0.0.1 and a Thorn app that may use them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from thorn import Thorn
from thorn import app as app_module
from thorn.listener import ListenerThread

#: In CI a test that needs a missing server fails instead of skipping.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def local_validators() -> list[Any]:
    """Validators for tests that deliver to 127.0.0.1: schemes only.

    The default set refuses loopback and any port but 80/443, which is what
    other tests prove; these let a test reach its own receiver.
    """
    from thorn.validators import ensure_protocol

    return [ensure_protocol("http", "https")]


@pytest.fixture
def receiver() -> Iterator[ListenerThread]:
    """A real HTTP receiver on 127.0.0.1 (answers 200 unless routed)."""
    with ListenerThread() as listener:
        yield listener


@pytest.fixture
def make_app() -> Iterator[Any]:
    """Make Thorn apps with settings; each is closed after the test."""
    made: list[Thorn] = []
    previous = getattr(app_module._state, "current", None)
    previous_default = app_module._default_app

    def make(**settings: Any) -> Thorn:
        settings.setdefault("THORN_RECIPIENT_VALIDATORS", local_validators())
        settings.setdefault("THORN_RETRY_JITTER", False)
        app = Thorn(settings=settings)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()
    app_module._state.current = previous
    app_module._default_app = previous_default


@pytest.fixture
def app(make_app: Any) -> Thorn:
    """A current Thorn app that may deliver to 127.0.0.1, without retries."""
    return make_app(THORN_RETRY=False)
