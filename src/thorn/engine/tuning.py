"""The garbage collector of a process that runs the delivery engine.

Python collects its youngest generation every 700 net allocations of
container objects, and the whole heap when enough objects have survived.
The engine allocates a task, a request and a result for every delivery and
keeps thousands of them alive while a batch is in flight, so with Python's
settings it collects hundreds of times a second, and each full collection
walks everything the process imported at start-up (Django, the project).
``thorn_worker`` and ``serve`` call :func:`tune_gc` once they are set up
(their ``--gc-threshold`` option; ``0`` leaves Python's settings alone).
"""

from __future__ import annotations

import gc

__all__ = ["GC_THRESHOLD", "tune_gc"]

#: The youngest generation's threshold the engine's commands set (Python's
#: is 700).
GC_THRESHOLD = 20_000


def tune_gc(threshold: int = GC_THRESHOLD) -> tuple[int, int, int]:
    """Collect once, freeze what is left, and raise the young threshold.

    What exists when this is called (modules, classes, settings: the
    process's start-up) is moved out of the collector's sight
    (:func:`gc.freeze`), so later collections walk only what the process
    made since. The youngest generation is then collected every
    ``threshold`` allocations instead of Python's 700; the older
    generations' thresholds are kept. Call it once, after start-up, in a
    process of your own (it changes the whole interpreter). ``threshold``
    0 (or less) changes nothing.

    Returns the thresholds before the call (for :func:`gc.set_threshold`).
    """
    before: tuple[int, int, int] = gc.get_threshold()
    if threshold <= 0:
        return before
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, before[1], before[2])
    return before
