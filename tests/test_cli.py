"""The ``thorn`` command, run as a user runs it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

from thorn.listener import Reply

SECRET = "s3cret-for-the-cli-test"


def thorn(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thorn.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
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
            sys.executable,
            "-m",
            "thorn.cli",
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
