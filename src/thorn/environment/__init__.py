"""Framework integration: environments, autodetected (Django first)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Env", "PlainEnv"]


class Env:
    """What Thorn needs from a web framework.

    An environment points to the framework's settings, its subscriber model,
    its transaction hook and its URL reverser. Register new ones in
    ``Thorn.environments``; the first whose :meth:`autodetect` returns true
    is used.
    """

    name = "base"

    @staticmethod
    def autodetect() -> bool:
        return False

    @property
    def config(self) -> Any:
        """The settings source (a mapping or an object with attributes)."""
        return None

    @property
    def Subscriber(self) -> Any:
        return None

    def subscribers_for(
        self, event: str, *, sender: Any = None, app: Any = None
    ) -> Iterable[Any]:
        """Stored subscribers of ``event`` (none without a framework)."""
        return ()

    def on_commit(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fun`` when the current transaction commits (now, without one)."""
        fun(*args, **kwargs)

    @property
    def reverse(self) -> Callable[..., str] | None:
        return None

    def setting_changed(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(setting_name)`` when the framework changes a setting."""


class PlainEnv(Env):
    """No framework: settings come from ``Thorn(settings=...)`` or ``configure``."""

    name = "plain"

    @staticmethod
    def autodetect() -> bool:
        return True
