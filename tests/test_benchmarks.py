"""The benchmark command keeps working (it measures; it asserts no speed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IN_CI

ROOT = Path(__file__).parents[1]


def bench(
    module: str, *args: str, timeout: float = 110
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m benchmarks.MODULE ARGS`` from the project's root;
    fail the test with its stderr if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_benchmark_command_runs_and_reports_every_case(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = bench(
        "run",
        "--seconds",
        "0.1",
        "--rounds",
        "1",
        "--only",
        "requests-keepalive",
        "thorn-default-1",
        "thorn-default-10",
        "--json",
        str(out),
        timeout=120,
    )
    rows = json.loads(out.read_text())
    assert [r["case"] for r in rows] == [
        "requests-keepalive",
        "thorn-default-1",
        "thorn-default-10",
    ]
    assert all(r["per_second"] > 0 for r in rows)
    assert "deliveries/s" in result.stdout


def test_the_serve_benchmark_runs_and_delivers_its_backlog() -> None:
    result = bench("serve", "--subscribers", "5", "--events", "4", "--requests", "5")
    assert "backlog of 20 deliveries" in result.stdout
    # Both modes ran, and each delivered its backlog.
    assert "## serve: " in result.stdout
    assert "## serve --store-process: " in result.stdout
    assert result.stdout.count("backlog delivered in") == 2
    assert result.stdout.count("app view idle (5)") == 2


def test_the_engine_benchmark_runs_on_django(tmp_path: Path) -> None:
    """The Django cases, the send() costs and the fan-out, small."""
    out = tmp_path / "engine.json"
    result = bench(
        "engine",
        "--count",
        "300",
        "--rounds",
        "1",
        "--only",
        "engine",
        "engine-sp",
        "--fan-out",
        "200",
        "--sends",
        "5",
        "--json",
        str(out),
    )
    cases = json.loads(out.read_text())["cases"]
    assert [c["case"] for c in cases] == ["engine", "engine-sp"]
    assert all(c["per_second"] > 0 for c in cases)
    assert "send() with the outbox, 10 subscribers" in result.stdout
    assert "one event to 200 subscribers: send()" in result.stdout
    assert "finding the subscribers alone" in result.stdout


def test_the_store_benchmark_runs() -> None:
    result = bench("store", "--count", "300", "--batch", "100")
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("sqlite")]
    assert len(line.split()) == 7  # name, then wall (cpu) for three calls


def test_the_instruction_count_benchmark_counts_each_call() -> None:
    if shutil.which("valgrind") is None:
        if IN_CI:
            pytest.fail("valgrind is missing (.ci/run installs it)")
        pytest.skip("valgrind is not installed")
    result = bench("instructions", "--count", "30", "--sends", "5", timeout=600)
    rows = {
        line.split()[0]: float(line.split()[1])
        for line in result.stdout.splitlines()
        if line.split()
        and line.split()[0] in ("enqueue", "claim", "record", "send-1", "send-10")
    }
    assert set(rows) == {"enqueue", "claim", "record", "send-1", "send-10"}
    # Thousands of instructions per delivery: counted, not zero.
    assert all(value > 1 for value in rows.values()), result.stdout
