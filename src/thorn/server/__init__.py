"""What ``manage.py serve`` runs beside the application, without Django.

:mod:`thorn.server.probes` answers the Kubernetes probes and ``/metrics`` on
a port of their own, :mod:`thorn.server.metrics` keeps the Prometheus
metrics (and the ASGI middleware that measures the application),
:mod:`thorn.server.lifecycle` sends the lifecycle webhooks,
:mod:`thorn.server.static` serves ``--static`` and ``--media`` files,
:mod:`thorn.server.reload` restarts the server for ``--autoreload`` and
:mod:`thorn.server.uvicorn` is a uvicorn server that leaves the signals to
its caller. The Django command is :mod:`thorn.django.management.commands.serve`.
"""

from __future__ import annotations

from .lifecycle import LIVENESS, READINESS, STARTUP, LifecycleWebhooks
from .metrics import MeteredEngine, RequestMeter, ServeMetrics
from .probes import ProbeResponse, ProbeServer
from .static import StaticFiles
from .uvicorn import QuietSignalsServer

__all__ = [
    "LIVENESS",
    "READINESS",
    "STARTUP",
    "LifecycleWebhooks",
    "MeteredEngine",
    "ProbeResponse",
    "ProbeServer",
    "QuietSignalsServer",
    "RequestMeter",
    "ServeMetrics",
    "StaticFiles",
]
