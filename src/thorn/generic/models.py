"""Generic subscriber models: the abstract interface and a mixin for model classes."""

from __future__ import annotations

from typing import Any

from ..subscribers import AbstractSubscriber, user_ident

__all__ = ["AbstractSubscriber", "SubscriberModelMixin"]


class SubscriberModelMixin:
    """Mixin for subscriber models (an ORM class with the subscriber fields).

    The model provides ``event``, ``url``, ``content_type``, ``hmac_secret``,
    ``hmac_digest``, ``uuid`` and ``user`` (any of them may be missing; the
    defaults are those of :class:`thorn.Subscriber`).
    """

    def user_ident(self) -> Any:
        """The user's identity: a foreign key value is read without a query."""
        ident = getattr(self, "user_id", None)
        if ident is not None:
            return ident
        return user_ident(getattr(self, "user", None))

    def as_dict(self) -> dict[str, Any]:
        """Dictionary representation of the subscriber (plain JSON values)."""
        return AbstractSubscriber.as_dict(self)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, *args: Any, **kwargs: Any) -> Any:
        """Create a subscriber from its dictionary form (same arguments as dict).

        The ``user`` key holds a user identity (as :meth:`as_dict` writes it)
        and is passed on as ``user_id``.
        """
        data = dict(*args, **kwargs)
        if "user" in data and not hasattr(data["user"], "pk"):
            data["user_id"] = data.pop("user")
        return cls(**data)

    def sign(self, message: bytes | str) -> str:
        """Sign ``message`` with HMAC, using this subscriber's secret and digest."""
        from ..utils.hmac import sign

        secret = getattr(self, "hmac_secret", None)
        if not secret:
            raise ValueError(
                "this subscriber has no hmac_secret: set one before signing"
            )
        return sign(getattr(self, "hmac_digest", "sha256"), secret, message)
