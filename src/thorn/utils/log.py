"""Logging utilities (the manual's ``thorn.utils.log``)."""

from __future__ import annotations

import logging

__all__ = ["get_logger", "logger"]

#: Thorn's top logger: its modules log under ``thorn.*``.
logger = logging.getLogger("thorn")


def get_logger(name: str, parent: logging.Logger = logger) -> logging.Logger:
    """Get logger by name.

    A logger whose name is not under ``parent``'s (so that its parent would
    be the root logger) is attached to ``parent``, so the handlers and level
    given to Thorn's logger apply to it as well.
    """
    found = logging.getLogger(name)
    if (
        found is not parent
        and found is not logging.root
        and found.parent is logging.root
    ):
        found.parent = parent
    return found
