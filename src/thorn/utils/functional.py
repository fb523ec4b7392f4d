"""Functional-style utilities (the manual's ``thorn.utils.functional``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TypeVar

from ..filters import Q

__all__ = ["Q", "chunks"]

T = TypeVar("T")


def chunks(it: Iterable[T], n: int) -> Iterator[list[T]]:
    """Split an iterator into chunks with ``n`` elements each (the last may
    have fewer).

    >>> list(chunks(iter([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 3))
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]

    Items are taken lazily, one chunk at a time.
    """
    if n < 1:
        raise ValueError(f"chunks of {n!r} elements: give a size of 1 or more")
    items = iter(it)
    while chunk := list(itertools.islice(items, n)):
        yield chunk
