"""The ``thorn`` command, run as a user runs it: the installed script.

Exit codes (docs/cli.md): 0 success, 1 the work failed, 2 wrong usage.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from thorn import __version__
from thorn.listener import Reply

SECRET = "s3cret-for-the-cli-test"
#: The console script pip installed beside this interpreter (.venv/bin/thorn).
THORN = Path(sys.executable).with_name("thorn")


def thorn(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert THORN.exists(), f"{THORN} is missing: pip install -e ."
    return subprocess.run(
        [str(THORN), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_send_delivers_a_signed_event(receiver: Any) -> None:
    result = thorn(
        "send",
        "user.created",
        "--data",
        '{"name": "george"}',
        "--url",
        receiver.url("/a"),
        "--url",
        receiver.url("/b"),
        "--secret",
        SECRET,
        "--allow-internal",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("delivered") == 2
    hooks = receiver.wait_for(2)
    assert {h.json()["name"] for h in hooks} == {"george"}
    assert SECRET not in result.stdout + result.stderr


def test_send_refuses_internal_addresses_by_default(receiver: Any) -> None:
    result = thorn("send", "x.y", "--url", receiver.url("/"))
    assert result.returncode == 1
    assert "refusing" in result.stderr or "port" in result.stderr
    assert receiver.hooks == []


def test_send_exits_1_when_the_receiver_fails(receiver: Any) -> None:
    receiver.route("/", Reply(status=500))
    result = thorn("send", "x.y", "--url", receiver.url("/"), "--allow-internal")
    assert result.returncode == 1
    assert "500" in result.stderr


def test_send_retries_when_asked(receiver: Any) -> None:
    receiver.route("/", [Reply(status=503), Reply(status=200)])
    result = thorn(
        "send",
        "x.y",
        "--url",
        receiver.url("/"),
        "--allow-internal",
        "--retry-max",
        "2",
        "--retry-delay",
        "0.05",
    )
    assert result.returncode == 0, result.stderr
    assert receiver.listener.count == 2


def test_send_exits_2_on_bad_input() -> None:
    assert (
        thorn("send", "x.y", "--url", "http://e.com/", "--data", "{nope").returncode
        == 2
    )
    result = thorn("send", "bad..name", "--url", "http://e.com/")
    assert result.returncode == 2
    assert "empty word" in result.stderr


def test_listen_prints_and_verifies_webhooks() -> None:
    port = free_port()
    listener = subprocess.Popen(
        [
            str(THORN),
            "listen",
            "--port",
            str(port),
            "--secret",
            SECRET,
            "--exit-after",
            "2",
            "--timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/hook"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        good = thorn(
            "send", "a.b", "--url", url, "--secret", SECRET, "--allow-internal"
        )
        assert good.returncode == 0, good.stderr
        bad = thorn(
            "send", "a.b", "--url", url, "--secret", "wrong", "--allow-internal"
        )
        assert bad.returncode == 0, bad.stderr
        out, _ = listener.communicate(timeout=20)
    finally:
        listener.kill()
    assert listener.returncode == 1  # one webhook did not verify
    assert "signature OK (Hook-HMAC, Standard Webhooks)" in out
    assert "signature FAILED" in out
    assert out.count("a.b") == 2


def test_verify_checks_a_recorded_webhook(receiver: Any, tmp_path: Any) -> None:
    sent = thorn(
        "send",
        "a.b",
        "--data",
        '{"x": 1}',
        "--url",
        receiver.url("/"),
        "--secret",
        SECRET,
        "--allow-internal",
    )
    assert sent.returncode == 0, sent.stderr
    (hook,) = receiver.wait_for(1)
    body = tmp_path / "body.json"
    body.write_bytes(hook.body)
    headers = [
        f"{name}: {hook.header(name)}"
        for name in (
            "Hook-HMAC",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        )
    ]
    args = [arg for h in headers for arg in ("--header", h)]
    ok = thorn("verify", "--secret", SECRET, "--body-file", str(body), *args)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signature OK (Hook-HMAC, Standard Webhooks)" in ok.stdout
    body.write_bytes(hook.body + b" ")
    bad = thorn("verify", "--secret", SECRET, "--body-file", str(body), *args)
    assert bad.returncode == 1
    assert "signature FAILED" in bad.stdout
    assert SECRET not in bad.stdout + bad.stderr
    usage = thorn(
        "verify", "--secret", SECRET, "--header", "no colon", "--body-file", str(body)
    )
    assert usage.returncode == 2


def test_wrong_usage_exits_2() -> None:
    for args in (
        (),
        ("nope",),
        ("send", "x.y"),  # no --url
        ("send", "x.y", "--url", "http://e.com/", "--timeout", "soon"),
        ("verify",),  # no --secret
        ("listen", "--port", "many"),
    ):
        result = thorn(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage: thorn" in result.stderr


def test_version_and_help_exit_0() -> None:
    version = thorn("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"thorn {__version__}"
    helped = thorn("--help")
    assert helped.returncode == 0
    for command in ("listen", "send", "verify", "replay", "purge"):
        assert command in helped.stdout


def test_verify_needs_a_readable_body_and_can_require_standard_webhooks(
    receiver: Any, tmp_path: Any
) -> None:
    missing = thorn(
        "verify", "--secret", SECRET, "--body-file", str(tmp_path / "none.json")
    )
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    sent = thorn(
        "send",
        "a.b",
        "--url",
        receiver.url("/"),
        "--secret",
        SECRET,
        "--allow-internal",
    )
    assert sent.returncode == 0, sent.stderr
    (hook,) = receiver.wait_for(1)
    body = tmp_path / "body.json"
    body.write_bytes(hook.body)
    hmac_only = ["--header", f"Hook-HMAC: {hook.header('Hook-HMAC')}"]
    ok = thorn("verify", "--secret", SECRET, "--body-file", str(body), *hmac_only)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signature OK (Hook-HMAC)" in ok.stdout
    strict = thorn(
        "verify",
        "--secret",
        SECRET,
        "--body-file",
        str(body),
        "--require-standard",
        *hmac_only,
    )
    assert strict.returncode == 1
    assert "signature FAILED" in strict.stdout
    # The body on standard input, the default.
    piped = subprocess.run(
        [str(THORN), "verify", "--secret", SECRET, *hmac_only],
        input=hook.body,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr


@pytest.mark.parametrize("command", ["replay", "purge"])
def test_replay_and_purge_need_a_django_project(command: str) -> None:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = thorn(command, env=env)
    assert result.returncode == 2
    assert "set DJANGO_SETTINGS_MODULE or pass --settings" in result.stderr
    missing = thorn(command, "--settings", "no_such_project.settings", env=env)
    assert missing.returncode == 2
    assert "cannot load the settings 'no_such_project.settings'" in missing.stderr
