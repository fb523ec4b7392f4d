"""The ``thorn`` command: ``listen``, ``send``, ``verify``, ``replay``, ``purge``.

Exit codes: 0 success, 1 the work failed (a delivery failed, a webhook did
not verify, fewer webhooks arrived than ``listen --exit-after`` asked, the
database failed), 2 wrong usage or configuration, 130 interrupted (Ctrl-C).

``replay`` and ``purge`` run the ``thorn_replay`` and ``thorn_purge``
management commands of a Django project; Django is imported only then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .__about__ import __version__

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _print_hook(
    hook: Any, out: TextIO, *, show_body: bool, max_body: int = 2000
) -> None:
    when = datetime.datetime.fromtimestamp(hook.received_at).strftime("%H:%M:%S.%f")[
        :-3
    ]
    event = hook.header("hook-event") or "-"
    delivery = hook.header("hook-delivery") or "-"
    if hook.verified:
        check = f"signature OK ({hook.verified})"
    elif hook.error:
        check = f"signature FAILED: {hook.error}"
    else:
        check = "signature not checked (no --secret)"
    out.write(f"{when}  {hook.method} {hook.path}  {event}  {delivery}\n  {check}\n")
    if show_body:
        text = hook.body.decode("utf-8", "replace")
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        if len(text) > max_body:
            text = text[:max_body] + f"\n  ... ({len(hook.body)} bytes)"
        out.write("  " + text.replace("\n", "\n  ") + "\n")
    out.flush()


async def _listen(args: argparse.Namespace, out: TextIO) -> int:
    from .listener import Listener, Reply

    done = asyncio.Event()
    failures = 0

    def on_hook(hook: Any) -> None:
        nonlocal failures
        if hook.error:
            failures += 1
        if not args.quiet:
            _print_hook(hook, out, show_body=not args.no_body)
        if args.exit_after and listener.count >= args.exit_after:
            done.set()

    listener = Listener(
        args.host,
        args.port,
        secret=args.secret,
        digest=args.digest,
        handler=lambda hook: Reply(status=args.status),
        on_hook=on_hook,
        record=False,
    )
    await listener.start()
    out.write(
        f"thorn {__version__} listening on {listener.url('/')}  (Ctrl-C to stop)\n"
    )
    out.flush()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, done.set)
    try:
        if args.timeout:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), args.timeout)
        else:
            await done.wait()
    finally:
        await listener.stop()
    if args.exit_after and listener.count < args.exit_after:
        out.write(f"only {listener.count} of {args.exit_after} webhooks arrived\n")
        return EXIT_FAILED
    return EXIT_FAILED if failures else EXIT_OK


def cmd_listen(args: argparse.Namespace) -> int:
    from .transport.client import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(_listen(args, sys.stdout))
    finally:
        loop.close()


def cmd_send(args: argparse.Namespace) -> int:
    from .app import Thorn
    from .events import Event
    from .exceptions import ThornError
    from .validators import block_internal_ips, ensure_protocol

    try:
        data = json.loads(args.data)
    except ValueError as exc:
        print(f"thorn send: --data is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    validators: list[Any] | None = None  # None: the documented default set
    if args.allow_internal:
        # Local development: any address and port, http or https only.
        validators = [ensure_protocol("http", "https")]
    elif args.any_port:
        validators = [block_internal_ips(), ensure_protocol("http", "https")]
    app = Thorn(
        settings={
            "THORN_RETRY": args.retry_max > 0,
            "THORN_RETRY_MAX": args.retry_max,
            "THORN_RETRY_DELAY": args.retry_delay,
            "THORN_RECIPIENT_VALIDATORS": validators,
        },
        set_as_current=False,
    )
    subscribers = [
        {
            "url": url,
            "content_type": args.content_type,
            "hmac_secret": args.secret,
            "hmac_digest": args.digest,
        }
        for url in args.url
    ]
    failed: list[str] = []

    def ok(request: Any) -> None:
        response = request.response
        print(
            f"delivered {request.id} to {request.url}: {response.status} in "
            f"{response.elapsed * 1000:.1f} ms"
        )

    def error(request: Any, exc: BaseException) -> None:
        where = request.subscriber.url
        with contextlib.suppress(ValueError):
            where = str(request.url)
        failed.append(where)
        print(f"FAILED {request.id} to {where}: {exc}", file=sys.stderr)

    try:
        event = Event(
            args.event, app=app, subscribers=subscribers, timeout=args.timeout
        )
        event.send(data, on_success=ok, on_error=error, on_timeout=error)
        app.dispatcher.wait_for_retries()
    except (ThornError, ValueError, TypeError) as exc:
        print(f"thorn send: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        app.close()
    return EXIT_FAILED if failed else EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .exceptions import SignatureError
    from .receiver import verify_request

    headers: dict[str, str] = {}
    for line in args.header:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            print(
                f"thorn verify: --header {line!r} is not 'Name: value'", file=sys.stderr
            )
            return EXIT_USAGE
        headers[name.strip()] = value.strip()
    if args.body_file == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            with open(args.body_file, "rb") as fh:
                body = fh.read()
        except OSError as exc:
            print(
                f"thorn verify: cannot read {args.body_file}: {exc.strerror}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        verified = verify_request(
            body,
            headers,
            args.secret,
            digest=args.digest,
            tolerance=args.tolerance,
            require_standard=args.require_standard,
        )
    except SignatureError as exc:
        print(f"signature FAILED: {exc}")
        return EXIT_FAILED
    print(f"signature OK ({verified})")
    return EXIT_OK


def _django_options(args: argparse.Namespace) -> list[str]:
    """The management command's own options, as its command line takes them."""
    argv: list[str] = []
    for name in ("event", "subscriber", "status", "since", "until", "older_than"):
        value = getattr(args, name, None)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", value]
    if args.dry_run:
        argv.append("--dry-run")
    if args.database:
        argv += ["--database", args.database]
    return argv


def cmd_django(args: argparse.Namespace) -> int:
    """``thorn replay`` and ``thorn purge``: the management command, in the project."""
    prog = f"thorn {args.command}"
    settings = args.settings or os.environ.get("DJANGO_SETTINGS_MODULE")
    if not settings:
        print(
            f"{prog}: this works in a Django project: set DJANGO_SETTINGS_MODULE "
            "or pass --settings (e.g. --settings mysite.settings)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    # As manage.py would: the project is importable from where one stands.
    for path in (os.getcwd(), args.pythonpath):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    # The only Django imports of thorn.cli, here inside the function: the core
    # module must not import Django (thorn[django] may not be installed).
    try:
        import django
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        print(f"{prog} needs Django: pip install 'thorn[django]'", file=sys.stderr)
        return EXIT_USAGE
    try:
        django.setup()
    except (ImportError, ImproperlyConfigured) as exc:
        print(f"{prog}: cannot load the settings {settings!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from django.apps import apps
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import DatabaseError

    if not apps.is_installed("thorn.django"):
        print(
            f"{prog}: add 'thorn.django' to INSTALLED_APPS of {settings}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        call_command(
            f"thorn_{args.command}",
            *_django_options(args),
            stdout=sys.stdout,
            stderr=sys.stderr,
        )
    except CommandError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseError as exc:
        print(f"{prog}: the database failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _add_django_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        metavar="MODULE",
        help="the project's settings module (default: $DJANGO_SETTINGS_MODULE)",
    )
    parser.add_argument(
        "--pythonpath",
        metavar="DIR",
        help="a directory to import the project from (the current one is too)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only say how many; change nothing"
    )
    parser.add_argument("--database", help="database alias (default: default)")
    parser.set_defaults(func=cmd_django)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thorn", description="Thorn webhooks: send and receive them."
    )
    parser.add_argument("--version", action="version", version=f"thorn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    listen = sub.add_parser(
        "listen", help="run a local receiver that prints each webhook and checks it"
    )
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=8765)
    listen.add_argument(
        "--secret", help="check Hook-HMAC and Standard Webhooks signatures"
    )
    listen.add_argument("--digest", default="sha256", help="Hook-HMAC digest (sha256)")
    listen.add_argument("--status", type=int, default=200, help="status to answer with")
    listen.add_argument(
        "--quiet", action="store_true", help="print nothing per webhook"
    )
    listen.add_argument("--no-body", action="store_true", help="do not print bodies")
    listen.add_argument(
        "--exit-after",
        type=int,
        default=0,
        metavar="N",
        help="stop after N webhooks (exit 1 if fewer arrive)",
    )
    listen.add_argument("--timeout", type=float, default=0, help="stop after SECONDS")
    listen.set_defaults(func=cmd_listen)

    send = sub.add_parser("send", help="send one event to one or more URLs")
    send.add_argument("event", help="event name, e.g. article.created")
    send.add_argument("--data", default="{}", help="payload as JSON")
    send.add_argument(
        "--url", action="append", required=True, help="subscriber URL (repeat)"
    )
    send.add_argument("--secret", help="HMAC secret to sign with")
    send.add_argument("--digest", default="sha256")
    send.add_argument("--content-type", default="application/json")
    send.add_argument("--timeout", type=float, default=3.0)
    send.add_argument("--retry-max", type=int, default=0)
    send.add_argument("--retry-delay", type=float, default=1.0)
    send.add_argument(
        "--allow-internal",
        action="store_true",
        help="allow internal addresses (127.0.0.1...) and any port",
    )
    send.add_argument(
        "--any-port",
        action="store_true",
        help="allow any port (internal addresses stay blocked)",
    )
    send.set_defaults(func=cmd_send)

    verify = sub.add_parser(
        "verify", help="check a webhook's signatures (Hook-HMAC, Standard Webhooks)"
    )
    verify.add_argument("--secret", required=True, help="the subscription's secret")
    verify.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeat); at least one signature header",
    )
    verify.add_argument(
        "--body-file",
        default="-",
        help="file with the raw body ('-' for standard input)",
    )
    verify.add_argument("--digest", default="sha256", help="Hook-HMAC digest")
    verify.add_argument(
        "--tolerance",
        type=int,
        default=300,
        help="seconds a Standard Webhooks timestamp may be off",
    )
    verify.add_argument(
        "--require-standard",
        action="store_true",
        help="fail unless a Standard Webhooks signature verifies",
    )
    verify.set_defaults(func=cmd_verify)

    replay = sub.add_parser(
        "replay",
        help="queue finished deliveries again, with their ids (Django project)",
        description="Queue finished deliveries of the outbox again (failed ones "
        "by default); they keep their ids. Runs manage.py thorn_replay.",
    )
    replay.add_argument("--event", help="only deliveries of this event")
    replay.add_argument(
        "--subscriber", metavar="UUID", help="only deliveries to this subscription"
    )
    replay.add_argument(
        "--status", help="failed (default), succeeded or all", default=None
    )
    replay.add_argument("--since", help="created at or after (ISO 8601)")
    replay.add_argument("--until", help="created before (ISO 8601)")
    _add_django_options(replay)

    purge = sub.add_parser(
        "purge",
        help="delete finished messages past the retention period (Django project)",
        description="Delete messages whose deliveries all finished longer ago "
        "than the retention period, with their log. Runs manage.py thorn_purge.",
    )
    purge.add_argument(
        "--older-than",
        metavar="AGE",
        help="e.g. 30d, 12h, 90m (default: THORN_RETENTION)",
    )
    _add_django_options(purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
