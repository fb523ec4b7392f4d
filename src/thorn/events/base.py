"""Events: ``Event``, the basic webhook event of any Python program."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..app import app_or_default, prepare_validators
from ..exceptions import UnknownEvent
from ..request import Request
from ..retry import RetryPolicy
from ..subscribers import matches_pattern, validate_event_name

__all__ = ["Event"]

logger = logging.getLogger(__name__)


class Event:
    """Webhook Event.

    Args:
        name: Name of this event. Namespaces can be dot-separated, and if so
            subscribers can glob-match based on the parts in the name, e.g.
            ``"order.created"``.

    Keyword Arguments:
        timeout: Default request timeout for this event (seconds).
        retry: Enable/disable retries when dispatching this event fails
            (default: ``THORN_RETRY``, enabled).
        retry_max: Max number of retries (default: ``THORN_RETRY_MAX``, 10).
        retry_delay: Delay before the first retry (default:
            ``THORN_RETRY_DELAY``, 60 seconds); later ones back off.
        recipient_validators: validators for the recipient URL (default:
            ``THORN_RECIPIENT_VALIDATORS``).
        subscribers: Additional subscribers: URLs, dicts, subscriber
            objects, or callables returning these.
        request_data: Optional mapping of extra data to inject into event
            payloads.
        allow_keepalive: False disables HTTP keep-alive for this event only.
        dispatcher: a dispatcher for this event only (alias or instance).
    """

    app: Any = None
    allow_keepalive = True
    recipient_validators: Sequence[Callable[..., Any]] | None = None

    def __init__(
        self,
        name: str,
        timeout: float | None = None,
        dispatcher: Any = None,
        retry: bool | None = None,
        retry_max: int | None = None,
        retry_delay: float | None = None,
        app: Any = None,
        recipient_validators: Sequence[Callable[..., Any]] | None = None,
        subscribers: Any = None,
        request_data: Mapping[str, Any] | None = None,
        allow_keepalive: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self.name = self._validate_name(name)
        self.timeout = timeout
        self._dispatcher = dispatcher
        self.retry = retry
        self.retry_max = retry_max
        self.retry_delay = retry_delay
        if retry_max is not None and retry_max < 0:
            raise ValueError("retry_max must be 0 or more")
        if retry_delay is not None and retry_delay < 0:
            raise ValueError("retry_delay must be 0 or more seconds")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be more than 0 seconds")
        self.app = app or self.app
        if recipient_validators is not None:
            self.recipient_validators = recipient_validators
        self._prepared_validators: tuple[Callable[..., Any], ...] | None = None
        self._subscribers = subscribers
        if request_data is not None and not isinstance(request_data, Mapping):
            raise TypeError("request_data must be a mapping")
        self.request_data = request_data
        if allow_keepalive is not None:
            self.allow_keepalive = allow_keepalive
        self.options = kwargs
        self._policy_cache: tuple[Any, int, RetryPolicy] | None = None

    def _validate_name(self, name: str) -> str:
        return validate_event_name(name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"

    # -- properties -------------------------------------------------------------

    @property
    def _app(self) -> Any:
        return app_or_default(self.app)

    @property
    def dispatcher(self) -> Any:
        if self._dispatcher is None:
            return self._app.dispatcher
        if isinstance(self._dispatcher, (str, type)):
            self._dispatcher = self._app._make_dispatcher(self._dispatcher)
        return self._dispatcher

    @property
    def subscribers(self) -> Any:
        return self._subscribers

    @property
    def retry_policy(self) -> RetryPolicy:
        settings = self._app.settings
        cached = self._policy_cache
        if (
            cached is not None
            and cached[0] is settings
            and cached[1] == settings.generation
        ):
            return cached[2]
        policy = RetryPolicy.from_settings(
            settings,
            retry=self.retry,
            max_retries=self.retry_max,
            delay=self.retry_delay,
        )
        self._policy_cache = (settings, settings.generation, policy)
        return policy

    def prepare_recipient_validators(
        self, validators: Sequence[Callable[..., Any]] | None
    ) -> tuple[Callable[..., Any], ...]:
        """Prepare recipient validator list (instance-wide, cached)."""
        return prepare_validators(validators)

    @property
    def prepared_recipient_validators(self) -> Sequence[Callable[..., Any]]:
        if self.recipient_validators is None:
            return self._app.recipient_validators  # type: ignore[no-any-return]
        if self._prepared_validators is None:
            self._prepared_validators = self.prepare_recipient_validators(
                self.recipient_validators
            )
        return self._prepared_validators

    def prepare_payload(self, data: Any) -> Any:
        """Inject ``request_data`` into the payload."""
        if not self.request_data:
            return data
        if data is None:
            return dict(self.request_data)
        if not isinstance(data, Mapping):
            raise TypeError(
                f"event {self.name!r} has request_data, so its payload must be a "
                f"mapping, not {type(data).__name__}"
            )
        return {**data, **self.request_data}

    def check_name(self, name: str) -> None:
        """Raise UnknownEvent if ``THORN_EVENT_CHOICES`` does not allow ``name``."""
        choices = self._app.settings.THORN_EVENT_CHOICES
        if choices is None:
            return
        for choice in choices:
            value = choice[0] if isinstance(choice, (tuple, list)) else choice
            if matches_pattern(str(value), name):
                return
        raise UnknownEvent(
            f"event {name!r} is not in THORN_EVENT_CHOICES; add it there "
            "(or a pattern matching it) before sending it"
        )

    # -- sending ------------------------------------------------------------------

    def send(
        self,
        data: Any,
        sender: Any = None,
        on_success: Callable[[Request], Any] | None = None,
        on_error: Callable[[Request, BaseException], Any] | None = None,
        timeout: float | None = None,
        on_timeout: Callable[[Request, BaseException], Any] | None = None,
        context: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send event to all subscribers.

        Args:
            data: Event payload (must be serializable by the subscriber's
                content type codec; JSON by default).

        Keyword Arguments:
            sender: Optional event sender, as a User instance (subscribers
                with a user only receive events their user sent).
            context: Extra context to pass to subscriber callbacks.
            timeout: Custom HTTP request timeout overriding the event's and
                ``THORN_EVENT_TIMEOUT``.
            on_success: called with the request when it succeeds.
            on_timeout: called with ``(request, exc)`` when it finally timed out.
            on_error: called with ``(request, exc)`` when it finally failed.
            headers: extra HTTP headers for this send.

        Returns:
            What the dispatcher returns: the list of requests made (or
            buffered) for the default dispatcher.
        """
        self.check_name(self.name)
        return self._send(
            self.name,
            self.prepare_payload(data),
            sender,
            on_success=on_success,
            on_error=on_error,
            on_timeout=on_timeout,
            timeout=timeout,
            context=context,
            headers=headers,
        )

    def _send(
        self,
        name: str,
        payload: Any,
        sender: Any,
        *,
        timeout: float | None = None,
        context: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        **callbacks: Any,
    ) -> Any:
        return self.dispatcher.send(
            name,
            payload,
            sender,
            timeout=timeout if timeout is not None else self.timeout,
            context=context,
            extra_subscribers=self.subscribers,
            recipient_validators=self.prepared_recipient_validators,
            policy=self.retry_policy,
            allow_keepalive=self.allow_keepalive,
            headers=headers,
            **callbacks,
        )
