"""Tools for URL references: how to get the canonical URL of a model instance."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from .app import app_or_default
from .exceptions import ImproperlyConfigured

__all__ = ["model_reverser"]


class model_reverser:
    """Describes how to get the canonical URL for a model instance.

    Positional and keyword values are names of attributes read from the
    instance (dotted for nested attributes); the URL is then
    ``app.reverse(view_name, args=[...], kwargs={...})`` (Django's
    ``django.urls.reverse``)::

        >>> # reverse("article:detail", kwargs={"uuid": article.uuid})
        >>> model_reverser("article:detail", uuid="uuid")

        >>> # reverse("category:detail", args=[article.category.name])
        >>> model_reverser("category:detail", "category.name")

    Django's ``reverse`` refuses ``args`` and ``kwargs`` together, so give
    one or the other there.
    """

    app: Any = None

    def __init__(self, view_name: str, *args: str, **kwargs: str) -> None:
        if not isinstance(view_name, str) or not view_name:
            raise TypeError(f"model_reverser needs a view name, not {view_name!r}")
        for value in (*args, *kwargs.values()):
            if not isinstance(value, str) or not value:
                raise TypeError(
                    f"model_reverser({view_name!r}, ...): {value!r} is not an "
                    "attribute name; write the name of the instance attribute "
                    "to read, e.g. uuid='uuid' or 'category.name'"
                )
        self.view_name = view_name
        self.args = args
        self.kwargs = kwargs
        self._arg_getters = tuple(attrgetter(name) for name in args)
        self._kwarg_getters = {key: attrgetter(name) for key, name in kwargs.items()}

    def __repr__(self) -> str:
        parts = [repr(self.view_name), *map(repr, self.args)]
        parts += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        return f"model_reverser({', '.join(parts)})"

    def reverse_arguments(self, instance: Any) -> tuple[list[Any], dict[str, Any]]:
        """The ``args`` and ``kwargs`` for ``reverse``, read from ``instance``."""
        return (
            [get(instance) for get in self._arg_getters],
            {key: get(instance) for key, get in self._kwarg_getters.items()},
        )

    def __call__(self, instance: Any, app: Any = None, **kwargs: Any) -> str:
        """Return the URL of ``instance`` (extra ``kwargs`` go to ``reverse``)."""
        reverse = app_or_default(app or self.app).reverse
        if reverse is None:
            raise ImproperlyConfigured(
                "model_reverser needs a URL reverser, and this environment has "
                "none: run under Django, or give ModelEvent(reverse=...) a "
                "function taking the instance"
            )
        args, reverse_kwargs = self.reverse_arguments(instance)
        return str(
            reverse(
                self.view_name,
                args=args or None,
                kwargs=reverse_kwargs or None,
                **kwargs,
            )
        )
