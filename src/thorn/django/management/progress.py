"""Progress of long outbox commands: a rich bar when rich is installed, else counts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["progress"]


@contextlib.contextmanager
def progress(
    description: str, total: int, out: Any, *, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows a bar on a terminal (rich), counts otherwise."""
    if not enabled or total <= 0:
        yield lambda n: None
        return
    try:
        from rich.progress import Progress
    except ImportError:
        yield _counter(description, total, out)
        return
    from rich.console import Console

    console = Console(file=out)
    if not console.is_terminal:
        yield _counter(description, total, out)
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)

        yield advance


def _counter(description: str, total: int, out: Any) -> Callable[[int], None]:
    """A line per twentieth of the work (logs and pipes want few lines)."""
    state = {"done": 0, "shown": 0}
    step = max(1, total // 20)

    def advance(n: int) -> None:
        state["done"] += n
        if state["done"] - state["shown"] >= step or state["done"] >= total:
            state["shown"] = state["done"]
            out.write(f"{description}: {state['done']}/{total}\n")

    return advance
