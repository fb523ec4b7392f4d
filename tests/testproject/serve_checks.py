"""A deployment check and signal receivers for the ``manage.py serve`` tests.

Installed as an app by the settings the serve tests write. The check is
tagged ``thorn``; it fails while the file named by the
``THORN_TEST_UNHEALTHY_FILE`` setting exists, so a test can make a running
server unhealthy and healthy again. The receivers write down what the
engine's delivery signals say (``THORN_TEST_SIGNAL_LOG``), and one raises.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from thorn import signals


def unhealthy_file(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    path = getattr(settings, "THORN_TEST_UNHEALTHY_FILE", None)
    if path and os.path.exists(path):
        return [
            Error(
                "the test made this server unhealthy",
                hint=f"remove {path}",
                id="testproject.E001",
            )
        ]
    return []


register(unhealthy_file, "thorn", deploy=True)


# -- signal receivers: the engine in ``serve`` sends the delivery signals ------------


@signals.delivery_succeeded.connect
def note_delivery(task: Any, **kwargs: Any) -> None:
    """Write down each delivery the engine made, as the database has it now.

    The ORM works here: the engine sends the signal from its database
    thread, after the try was recorded.
    """
    from thorn.django.models import Delivery

    path = getattr(settings, "THORN_TEST_SIGNAL_LOG", None)
    if not path:
        return
    status = Delivery.objects.get(pk=task.id).status
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{task.id} {kwargs['response'].status} {status}\n")


@signals.delivery_attempted.connect
def broken_receiver(task: Any, **kwargs: Any) -> None:
    """A receiver with a bug: it must not break delivery."""
    raise RuntimeError("a receiver with a bug")
