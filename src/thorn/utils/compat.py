"""Python version compatibility utilities (the manual's ``thorn.utils.compat``).

Thorn 2 runs on Python 3.11 and later only; what is here keeps code written
for Thorn 1.x importing and working.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["bytes_if_py2"]

T = TypeVar("T")


def bytes_if_py2(s: T) -> T:
    """Convert str to bytes on Python 2; on Python 3, return ``s`` as it is.

    Thorn 1.x used it for names handed to APIs that wanted native strings
    (``bytes`` on Python 2, ``str`` on 3).
    """
    return s
