"""The examples run as the README says, from a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "example" / script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def test_plain_python_example_delivers_signed_webhooks() -> None:
    result = run("plain_python.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 webhooks received, 10 with verified signatures." in result.stdout


def test_django_demo_delivers_every_article_event(tmp_path: Path) -> None:
    result = run("demo.py", BLOG_DATABASE=str(tmp_path / "blog.sqlite3"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for event in [
        "article.created",
        "article.changed",
        "article.published",
        "article.tag_added",
        "article.tag_removed",
        "article.tags_cleared",
        "article.removed",
    ]:
        assert event in out, event
    assert out.count("signature OK") == 8
    assert "signature FAILED" not in out
    assert "http://127.0.0.1:8000/admin/" in out
