"""thorn.engine.tuning: the garbage collector of an engine's process."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from thorn.engine.tuning import GC_THRESHOLD, tune_gc


@pytest.fixture
def python_gc() -> Iterator[tuple[int, int, int]]:
    """The collector's thresholds before the test, put back after it."""
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_tune_gc_raises_the_young_threshold_and_keeps_the_others(
    python_gc: tuple[int, int, int],
) -> None:
    assert tune_gc(5000) == python_gc
    assert gc.get_threshold() == (5000, python_gc[1], python_gc[2])


def test_tune_gc_freezes_what_exists_and_collects_its_garbage_first(
    python_gc: tuple[int, int, int],
) -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    gc.unfreeze()
    kept = Cycle()  # alive: frozen with the rest
    lost = Cycle()  # garbage already: collected first, not frozen forever
    gone = weakref.ref(lost)
    del lost
    tune_gc()
    assert gone() is None
    assert gc.get_freeze_count() > 0
    assert not gc.is_finalized(kept)
    # Frozen objects are out of every later collection's sight.
    assert all(kept is not o for o in gc.get_objects())
    assert gc.get_threshold()[0] == GC_THRESHOLD


@pytest.mark.parametrize("threshold", [0, -1])
def test_tune_gc_with_no_threshold_changes_nothing(
    python_gc: tuple[int, int, int], threshold: int
) -> None:
    gc.unfreeze()
    assert tune_gc(threshold) == python_gc
    assert gc.get_threshold() == python_gc
    assert gc.get_freeze_count() == 0
