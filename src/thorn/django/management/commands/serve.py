"""``manage.py serve``: the application over ASGI, the delivery engine beside it.

uvicorn serves the Django project and the outbox's delivery engine runs in
the same event loop; the probes and ``/metrics`` answer on a port of their
own. See ``docs/serve.md``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import os
import shlex
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from ....app import app_or_default
from ....engine.core import utcnow
from ....engine.process import StoreProcessError
from ....engine.tuning import tune_gc
from ....server import (
    LIVENESS,
    READINESS,
    STARTUP,
    LifecycleWebhooks,
    MeteredEngine,
    ProbeResponse,
    ProbeServer,
    QuietSignalsServer,
    RequestMeter,
    ServeMetrics,
)
from ....server.metrics import CONTENT_TYPE_LATEST
from ....server.reload import RESTART, FileWatcher, is_reloader_child, supervise
from ....server.static import StaticFiles
from ....transport.client import new_event_loop
from ....transport.url import parse_url
from ...models import Subscriber
from ...worker import engine_store
from .thorn_worker import (
    add_engine_arguments,
    engine_options,
    positive_float,
    positive_int,
)

logger = logging.getLogger("thorn.server")


class StartupFailed(Exception):
    """The start failed: the message says why."""


def _run_command(line: str) -> None:
    """Run one management command line (in an executor thread)."""
    try:
        args = shlex.split(line)
        if not args:
            raise StartupFailed("an empty --command")
        try:
            call_command(*args)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise StartupFailed(
                    f"--command {line!r} exited with {exc.code}"
                ) from exc
    finally:
        connections.close_all()


def _unapplied_migrations(using: str) -> list[str]:
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connections[using])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        return [f"{m.app_label}.{m.name}" for m, _ in plan]
    finally:
        connections.close_all()


def _liveness_errors() -> list[str]:
    messages = checks.run_checks(tags=["thorn"], include_deployment_checks=True)
    return [str(m) for m in messages if m.is_serious()]


def _files_setting(option: str, url_name: str, root_name: str) -> tuple[str, Path]:
    """The URL prefix and directory ``--static``/``--media`` serve, or CommandError."""
    url = getattr(settings, url_name, None) or ""
    root = getattr(settings, root_name, None) or ""
    parts = urlsplit(str(url))
    if not url or parts.scheme or parts.netloc or not parts.path.startswith("/"):
        raise CommandError(
            f"{option} needs {url_name} to be a path on this server, such as "
            f"'/{option[2:]}/', not {url!r}"
        )
    if not root:
        raise CommandError(f"{option} needs {root_name}: the directory to serve")
    prefix = parts.path if parts.path.endswith("/") else parts.path + "/"
    return prefix, Path(root)


class Command(BaseCommand):
    help = (
        "Serve the project over ASGI (uvicorn) with the outbox's delivery engine "
        "in the same event loop, probes and Prometheus metrics on a port of "
        "their own, and lifecycle webhooks."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Port (8000).")
        parser.add_argument(
            "--interface", default="127.0.0.1", help="Address to bind (127.0.0.1)."
        )
        parser.add_argument(
            "--static",
            action="store_true",
            help="Serve the collected static files (STATIC_ROOT at STATIC_URL).",
        )
        parser.add_argument(
            "--media",
            action="store_true",
            help="Serve the media files (MEDIA_ROOT at MEDIA_URL).",
        )
        parser.add_argument(
            "--autoreload",
            action="store_true",
            help="Start again when a Python file of the project changes (development).",
        )
        parser.add_argument(
            "--probe-port", type=int, default=None, help="Probe port (port + 1)."
        )
        parser.add_argument("--startup-probe", default="/startup")
        parser.add_argument("--readiness-probe", default="/ready")
        parser.add_argument("--liveness-probe", default="/alive")
        parser.add_argument(
            "--no-probe", action="store_true", help="No probe server at all."
        )
        parser.add_argument(
            "--no-metrics", action="store_true", help="No /metrics endpoint."
        )
        parser.add_argument(
            "--req-queue-len",
            type=int,
            default=10,
            help="Readiness threshold: a delivery backlog or application "
            "requests in flight above it make the readiness probe fail (10).",
        )
        parser.add_argument(
            "--command",
            action="append",
            default=[],
            dest="commands",
            help='A management command to run before serving, e.g. "migrate '
            '--noinput" (repeatable; run in order).',
        )
        parser.add_argument(
            "--check-migrations",
            action="store_true",
            help="Fail the start if migrations are unapplied.",
        )
        parser.add_argument("--webhook-url", default=None)
        parser.add_argument("--webhook-secret", default=None)
        parser.add_argument(
            "--webhook-allow-internal",
            action="store_true",
            help="Send lifecycle webhooks without the recipient validators.",
        )
        parser.add_argument(
            "--max-lifetime",
            type=positive_float,
            default=None,
            help="Stop gracefully after this many seconds.",
        )
        parser.add_argument(
            "--graceful-timeout",
            type=float,
            default=30.0,
            help="Seconds uvicorn waits for requests in flight on stop (30).",
        )
        parser.add_argument(
            "--drain-timeout",
            type=float,
            default=10.0,
            help="Seconds the engine waits for deliveries in flight on stop (10).",
        )
        add_engine_arguments(
            parser.add_argument_group("delivery engine"),
            whole=positive_int,
            number=positive_float,
        )
        parser.add_argument("--database", default=None, help="Database alias.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.check_options(options)
        if options["autoreload"] and not is_reloader_child():
            from django.utils.autoreload import get_child_arguments

            code = supervise(get_child_arguments(), out=self.stdout)
            if code:
                sys.exit(code)
            return
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            code = loop.run_until_complete(_Serve(self, options).run())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        if code == RESTART:
            sys.exit(RESTART)
        if code:
            raise CommandError("the start failed", returncode=code)

    def check_options(self, options: dict[str, Any]) -> None:
        """Refuse what cannot work before anything starts (CommandError)."""
        probe_port = options["probe_port"]
        if probe_port is None:
            probe_port = options["port"] + 1
        if not options["no_probe"] and probe_port == options["port"]:
            raise CommandError(
                f"--probe-port must differ from --port (both are {probe_port})"
            )
        paths = [
            options["startup_probe"],
            options["readiness_probe"],
            options["liveness_probe"],
        ]
        if not options["no_metrics"]:
            paths.append("/metrics")
        for path in paths:
            if not path.startswith("/"):
                raise CommandError(f"a probe path starts with '/': {path!r}")
        if len(set(paths)) != len(paths):
            raise CommandError(f"the probe paths must differ: {', '.join(paths)}")
        if options["webhook_url"]:
            try:
                url = parse_url(options["webhook_url"])
            except ValueError as exc:
                raise CommandError(f"--webhook-url: {exc}") from None
            if url.scheme not in ("http", "https"):
                raise CommandError("--webhook-url must be an http or https URL")
        options["files"] = []
        if options["static"]:
            prefix, root = _files_setting("--static", "STATIC_URL", "STATIC_ROOT")
            options["files"].append(("--static", prefix, root))
        if options["media"]:
            prefix, root = _files_setting("--media", "MEDIA_URL", "MEDIA_ROOT")
            options["files"].append(("--media", prefix, root))


class _Serve:
    """One run of the command."""

    def __init__(self, command: Command, options: dict[str, Any]) -> None:
        self.command = command
        self.options = options
        self.started_at = time.monotonic()
        self.using = options["database"] or DEFAULT_DB_ALIAS
        self.metrics = None if options["no_metrics"] else ServeMetrics()
        self.started = False
        self.reloading = False
        self.stop = asyncio.Event()
        self.server: QuietSignalsServer | None = None
        self.meter: RequestMeter | None = None
        self.engine: MeteredEngine | None = None
        self.watcher: FileWatcher | None = None
        # The engine's tries send the delivery signals, once recorded.
        self.store = engine_store(
            options["database"],
            process=options["store_process"],
            gc_threshold=options["gc_threshold"],
        )
        self.db = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="thorn-probe-db"
        )
        version = getattr(settings, "THORN_VERSION", None)
        self.webhooks = LifecycleWebhooks(
            options["webhook_url"],
            secret=options["webhook_secret"],
            version=str(version) if version is not None else "unknown",
            allow_internal=options["webhook_allow_internal"],
        )

    def write(self, text: str) -> None:
        self.command.stdout.write(text)
        self.command.stdout.flush()

    # -- the run ------------------------------------------------------------------

    async def run(self) -> int:
        """Start, serve until told to stop; 0, 1 (the start failed) or RESTART."""
        loop = asyncio.get_running_loop()
        probes = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_signal, sig.name)
        if is_reloader_child():
            self.watch_files(loop)
        try:
            if not self.options["no_probe"]:
                probes = self.probe_server()
                await probes.start()
                self.write(f"thorn serve: probes on {probes.host}:{probes.port}")
            try:
                server_task = await self.start()
            except Exception as exc:
                trace = (
                    str(exc)
                    if isinstance(exc, StartupFailed)
                    else traceback.format_exc()
                )
                self.command.stderr.write(f"thorn serve: the start failed: {trace}")
                waiting = self.watcher is not None and not self.stop.is_set()
                if waiting and self.watcher is not None:
                    # A module that failed to import is not in sys.modules:
                    # watch the files of the traceback as well.
                    frames = traceback.extract_tb(exc.__traceback__)
                    self.watcher.add(frame.filename for frame in frames)
                    if isinstance(exc, SyntaxError) and exc.filename:
                        self.watcher.add([exc.filename])
                self.webhooks.send(STARTUP, False, trace)
                if waiting:
                    self.write("thorn serve: waiting for a file to change")
                    await self.stop.wait()
                return RESTART if self.reloading else 1
            self.write(
                f"thorn serve: serving on http://{self.options['interface']}:"
                f"{self.options['port']}"
                + (f", engine {self.engine.owner}" if self.engine else "")
            )
            await self.serve(server_task)
            return RESTART if self.reloading else 0
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if self.watcher is not None:
                self.watcher.stop()
            if probes is not None:
                await probes.stop()
            await self.webhooks.flush()
            await loop.run_in_executor(self.db, connections.close_all)
            self.db.shutdown(wait=False)

    def on_signal(self, name: str) -> None:
        if not self.stop.is_set():
            logger.info("thorn serve: %s: stopping", name)
        self.stop.set()
        if self.server is not None:
            self.server.should_exit = True

    def watch_files(self, loop: asyncio.AbstractEventLoop) -> None:
        """Under ``--autoreload``: stop (to be started again) when a file changes,
        and stop when the supervisor is gone."""

        def on_change(path: str) -> None:
            self.write(f"thorn serve: {path} changed; stopping to start again")
            self.reloading = True
            self.on_signal("reload")

        self.watcher = FileWatcher()
        self.watcher.start(lambda path: loop.call_soon_threadsafe(on_change, path))
        parent = os.getppid()

        def check_parent() -> None:
            if os.getppid() != parent:
                self.on_signal("the supervisor is gone")
            elif not self.stop.is_set():
                loop.call_later(1.0, check_parent)

        loop.call_later(1.0, check_parent)

    @property
    def delivers(self) -> bool:
        """Whether this server runs the delivery engine (the outbox's)."""
        return bool(app_or_default().settings.THORN_DISPATCHER == "outbox")

    async def start(self) -> asyncio.Task[None]:
        """Run the commands, check migrations, start uvicorn; raise on failure."""
        loop = asyncio.get_running_loop()
        for line in self.options["commands"]:
            self.write(f"thorn serve: running {line!r}")
            await loop.run_in_executor(None, _run_command, line)
            if self.stop.is_set():
                raise StartupFailed("stopped during the start")
        if self.options["check_migrations"]:
            unapplied = await loop.run_in_executor(
                None, _unapplied_migrations, self.using
            )
            if unapplied:
                raise StartupFailed("unapplied migrations: " + ", ".join(unapplied))
        if self.options["store_process"] and self.delivers:
            # Started now, so that its start-up is counted in ours.
            try:
                await loop.run_in_executor(None, self.store.start)
            except StoreProcessError as failed:
                raise StartupFailed(str(failed)) from failed
            self.write(
                "thorn serve: the engine's database work runs in process "
                f"{self.store.pid}"
            )
        if self.stop.is_set():
            raise StartupFailed("stopped during the start")
        import uvicorn
        from django.core.asgi import get_asgi_application

        app: Any = get_asgi_application()
        for option, prefix, root in self.options["files"]:
            if not root.is_dir():
                self.write(
                    f"thorn serve: {option}: {root} is not a directory (yet): "
                    f"{prefix} answers 404"
                )
            app = StaticFiles(app, prefix=prefix, root=root)
        if self.delivers:
            # Started: what exists now (the project, Django) stays, so the
            # collector leaves it be (see thorn.engine.tuning).
            tune_gc(self.options["gc_threshold"])
        self.meter = RequestMeter(app, self.metrics)
        config = uvicorn.Config(
            app=self.meter,
            host=self.options["interface"],
            port=self.options["port"],
            loop="uvloop",
            lifespan="off",
            timeout_graceful_shutdown=self.options["graceful_timeout"],
            log_config=None,
        )
        self.server = server = QuietSignalsServer(config)
        task = loop.create_task(server.serve())
        deadline = time.monotonic() + 60
        while not server.started:
            if task.done():
                exc = task.exception() if not task.cancelled() else None
                raise StartupFailed(f"uvicorn did not start: {exc!r}")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise StartupFailed("uvicorn did not start in 60s")
            await asyncio.sleep(0.02)
        self.started = True
        elapsed = time.monotonic() - self.started_at
        if self.metrics is not None:
            self.metrics.startup.set(elapsed)
        self.webhooks.send(STARTUP, True)
        return task

    async def serve(self, server_task: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        engine_task = None
        if self.delivers:
            options = self.options
            self.engine = MeteredEngine(
                self.store,
                metrics=self.metrics,
                **engine_options(options),
            )
            tuned = self.engine
            self.write(
                f"thorn serve: engine batch {tuned.batch}, concurrency "
                f"{tuned.concurrency}, {tuned.per_host} per host, lease "
                f"{tuned.lease:g}s, poll {tuned.poll_interval:g}s, gc threshold "
                f"{gc.get_threshold()[0]}"
            )
            engine_task = loop.create_task(self.engine.run(self.stop))
        lifetime = self.options["max_lifetime"]
        if lifetime:
            loop.call_later(lifetime, self.on_signal, "max lifetime")
        stopping = loop.create_task(self.stop.wait())
        await asyncio.wait({server_task, stopping}, return_when="FIRST_COMPLETED")
        self.stop.set()
        assert self.server is not None
        self.server.should_exit = True
        try:
            await server_task
        except BaseException as exc:  # uvicorn's sys.exit() on a lost socket
            logger.error("thorn serve: uvicorn stopped: %r", exc)
        if engine_task is not None:
            await engine_task
            engine = self.engine
            assert engine is not None
            self.write(
                f"thorn serve: engine stopped; {engine.delivered} delivered, "
                f"{engine.retried} to retry, {engine.failed} failed"
            )
        stopping.cancel()

    # -- probes -------------------------------------------------------------------

    def probe_server(self) -> ProbeServer:
        options = self.options
        routes = {
            options["startup_probe"]: self.startup_probe,
            options["readiness_probe"]: self.readiness_probe,
            options["liveness_probe"]: self.liveness_probe,
        }
        if self.metrics is not None:
            routes["/metrics"] = self.metrics_probe
        port = options["probe_port"]
        return ProbeServer(
            routes,
            host=options["interface"],
            port=options["port"] + 1 if port is None else port,
        )

    async def startup_probe(self) -> ProbeResponse:
        if self.started:
            return ProbeResponse(200, b"started\n")
        return ProbeResponse(400, b"starting\n")

    async def _backlog(self) -> int:
        if self.engine is None:
            return 0
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.db, lambda: self.store.backlog(now=utcnow())
        )

    async def readiness_probe(self) -> ProbeResponse:
        if not self.started or self.stop.is_set():
            return ProbeResponse(400, b"not ready: not serving\n")
        limit = self.options["req_queue_len"]
        backlog = await self._backlog()
        requests = self.meter.in_flight if self.meter is not None else 0
        ready = backlog <= limit and requests <= limit
        text = f"backlog {backlog}, requests in flight {requests}, limit {limit}"
        self.webhooks.changed(READINESS, ready, None if ready else text)
        if ready:
            return ProbeResponse(200, f"ready: {text}\n".encode())
        return ProbeResponse(400, f"not ready: {text}\n".encode())

    async def liveness_probe(self) -> ProbeResponse:
        loop = asyncio.get_running_loop()
        errors = await loop.run_in_executor(self.db, _liveness_errors)
        self.webhooks.changed(LIVENESS, not errors, "\n".join(errors) or None)
        if errors:
            return ProbeResponse(500, ("\n".join(errors) + "\n").encode())
        return ProbeResponse(200, b"alive\n")

    async def metrics_probe(self) -> ProbeResponse:
        metrics = self.metrics
        assert metrics is not None
        if self.started:
            loop = asyncio.get_running_loop()
            metrics.backlog.set(await self._backlog())
            disabled = await loop.run_in_executor(
                self.db,
                lambda: (
                    Subscriber.objects.using(self.using).filter(active=False).count()
                ),
            )
            metrics.subscribers_disabled.set(disabled)
        if self.engine is not None:
            metrics.in_flight.set(self.engine.in_flight)
        if self.meter is not None:
            metrics.http_in_flight.set(self.meter.in_flight)
        return ProbeResponse(200, metrics.render(), CONTENT_TYPE_LATEST)
