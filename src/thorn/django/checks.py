"""Django system checks of the ``THORN_*`` settings (tag ``thorn``).

Ids are stable: ``thorn.E001``-``thorn.E008`` are errors, ``thorn.W001``
and ``thorn.W002`` (``--deploy``) warnings. Every message has a hint that
says what to do, and none shows a secret: URLs are shown redacted and
subscriber dicts are never printed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning

from ..conf import Settings, import_string
from ..exceptions import ImproperlyConfigured
from ..subscribers import AbstractSubscriber, validate_pattern

__all__ = [
    "TAG",
    "check_codecs",
    "check_dispatcher",
    "check_event_choices",
    "check_hmac_signer",
    "check_numbers",
    "check_recipient_validators",
    "check_recipients_blocked",
    "check_subscriber_model",
    "check_subscribers",
]

#: The tag of Thorn's checks: ``manage.py check --tag thorn``.
TAG = "thorn"

#: Settings that must be numbers above zero, or zero and above.
POSITIVE_NUMBERS = (
    "THORN_EVENT_TIMEOUT",
    "THORN_RETRY_BACKOFF_MAX",
    "THORN_PAYLOAD_MAX_SIZE",
    "THORN_RESPONSE_MAX_SIZE",
    "THORN_CHUNKSIZE",
    "THORN_MAX_CONNECTIONS",
    "THORN_MAX_CONNECTIONS_PER_HOST",
)
NON_NEGATIVE_NUMBERS = ("THORN_RETRY_DELAY", "THORN_RETRY_MAX")
WHOLE_NUMBERS = (
    "THORN_RETRY_MAX",
    "THORN_PAYLOAD_MAX_SIZE",
    "THORN_RESPONSE_MAX_SIZE",
    "THORN_CHUNKSIZE",
    "THORN_MAX_CONNECTIONS",
    "THORN_MAX_CONNECTIONS_PER_HOST",
)

CheckResult = list[CheckMessage]


def _settings() -> Settings:
    # A fresh object: the checks see the settings as they are now, with
    # Thorn's defaults, whatever app is current.
    return Settings(django_settings)


# -- thorn.E001 --------------------------------------------------------------------


@register(TAG)
def check_dispatcher(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E001: ``THORN_DISPATCHER`` is an alias or an importable class."""
    from ..app import Thorn

    spec = _settings().THORN_DISPATCHER
    aliases = ", ".join(repr(name) for name in sorted(Thorn.dispatchers))
    hint = (
        f"Set THORN_DISPATCHER to one of {aliases}, or to the import path of a "
        "dispatcher class such as 'proj.dispatchers:Dispatcher'."
    )
    if isinstance(spec, str):
        path = Thorn.dispatchers.get(spec, spec)
        if path == spec and ":" not in spec and "." not in spec:
            return [
                Error(
                    f"THORN_DISPATCHER={spec!r} is not a known dispatcher.",
                    hint=hint,
                    id="thorn.E001",
                )
            ]
        try:
            import_string(path, setting="THORN_DISPATCHER")
        except ImproperlyConfigured as exc:
            if spec == "celery":
                hint = "Install Celery: pip install 'thorn[celery]'. " + hint
            return [Error(str(exc), hint=hint, id="thorn.E001")]
        return []
    if isinstance(spec, type) or hasattr(spec, "send"):
        return []
    return [
        Error(
            f"THORN_DISPATCHER must be a name or a dispatcher, not "
            f"{type(spec).__name__}.",
            hint=hint,
            id="thorn.E001",
        )
    ]


# -- thorn.E002, thorn.W001 ------------------------------------------------------------


def _signer(spec: Any) -> Callable[..., Any]:
    fun = (
        import_string(spec, setting="THORN_HMAC_SIGNER")
        if isinstance(spec, str)
        else spec
    )
    if not callable(fun):
        raise ImproperlyConfigured(
            f"THORN_HMAC_SIGNER names a {type(fun).__name__}, not a function."
        )
    return fun  # type: ignore[no-any-return]


@register(TAG)
def check_hmac_signer(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E002: the signer imports; thorn.W001: it is not the compat signer."""
    from ..utils.hmac import compat_sign

    try:
        fun = _signer(_settings().THORN_HMAC_SIGNER)
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint=(
                    "Set THORN_HMAC_SIGNER to the import path of a function "
                    "taking (digest_method, secret, message), normally "
                    "'thorn.utils.hmac:sign'."
                ),
                id="thorn.E002",
            )
        ]
    if fun is compat_sign:
        return [
            CheckWarning(
                "THORN_HMAC_SIGNER is the itsdangerous-compatible signer, whose "
                "signatures are hard to verify outside Python.",
                hint=(
                    "Set THORN_HMAC_SIGNER = 'thorn.utils.hmac:sign' once your "
                    "receivers verify base64 HMACs (see the manual's examples)."
                ),
                id="thorn.W001",
            )
        ]
    return []


# -- thorn.E003, thorn.W002 ------------------------------------------------------------


def _validators() -> Sequence[Callable[..., Any]]:
    from ..app import prepare_validators

    return prepare_validators(_settings().THORN_RECIPIENT_VALIDATORS)


@register(TAG)
def check_recipient_validators(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E003: ``THORN_RECIPIENT_VALIDATORS`` is a list of validators."""
    try:
        _validators()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint=(
                    "Make THORN_RECIPIENT_VALIDATORS a list of thorn.validators "
                    "(block_internal_ips(), ensure_protocol('https'), ...), "
                    "import paths of functions, or None for the default set."
                ),
                id="thorn.E003",
            )
        ]
    return []


@register(TAG, deploy=True)
def check_recipients_blocked(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.W002 (deploy): internal addresses are refused as recipients."""
    from ..validators import BlockInternalIPs

    try:
        validators = _validators()
    except ImproperlyConfigured:
        return []  # thorn.E003 reports it
    if any(isinstance(check, BlockInternalIPs) for check in validators):
        return []
    return [
        CheckWarning(
            "THORN_RECIPIENT_VALIDATORS does not block internal addresses: "
            "subscribers can make this server post to 127.0.0.1, the private "
            "network or the cloud metadata service.",
            hint=(
                "Add thorn.validators.block_internal_ips() to "
                "THORN_RECIPIENT_VALIDATORS, or remove the setting to use the "
                "default validators."
            ),
            id="thorn.W002",
        )
    ]


# -- thorn.E004 ------------------------------------------------------------------------

_SUBSCRIBERS_HINT = (
    "THORN_SUBSCRIBERS maps event names or patterns ('article.*') to a URL, a "
    "dict such as {'url': ..., 'content_type': ...}, a callable returning "
    "subscribers, or a list of these."
)


def _subscriber_errors(key: str, spec: Any, where: str) -> list[str]:
    from ..subscribers import Subscriber
    from ..transport.url import InvalidURL, parse_url

    if spec is None or isinstance(spec, AbstractSubscriber) or callable(spec):
        return []
    if isinstance(spec, str):
        try:
            parse_url(spec)
        except InvalidURL as exc:
            return [f"{where} is not a usable URL: {exc}"]
        return []
    if isinstance(spec, Mapping):
        data = dict(spec)
        data.setdefault("event", key)
        try:
            Subscriber.from_dict(data)
        except (ImproperlyConfigured, ValueError, TypeError) as exc:
            # The message names keys or the URL problem, never the secret.
            return [f"{where} is not a valid subscriber: {exc}"]
        return _subscriber_errors(key, data["url"], where)
    if isinstance(spec, (list, tuple)):
        errors: list[str] = []
        for index, item in enumerate(spec):
            errors.extend(_subscriber_errors(key, item, f"{where}[{index}]"))
        return errors
    return [f"{where} is a {type(spec).__name__}, which is not a subscriber"]


@register(TAG)
def check_subscribers(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E004: ``THORN_SUBSCRIBERS`` maps valid patterns to subscribers."""
    spec = _settings().THORN_SUBSCRIBERS
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        return [
            Error(
                f"THORN_SUBSCRIBERS must be a dict, not {type(spec).__name__}.",
                hint=_SUBSCRIBERS_HINT,
                id="thorn.E004",
            )
        ]
    problems: list[str] = []
    for key, value in spec.items():
        where = f"THORN_SUBSCRIBERS[{key!r}]"
        try:
            validate_pattern(key)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        problems.extend(_subscriber_errors(key, value, where))
    return [Error(text, hint=_SUBSCRIBERS_HINT, id="thorn.E004") for text in problems]


# -- thorn.E005 ------------------------------------------------------------------------


@register(TAG)
def check_event_choices(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E005: ``THORN_EVENT_CHOICES`` lists valid names or (name, label)."""
    spec = _settings().THORN_EVENT_CHOICES
    hint = (
        "Make THORN_EVENT_CHOICES a list of event names or patterns such as "
        "['article.created', 'article.*'], or of (name, label) pairs."
    )
    if spec is None:
        return []
    if isinstance(spec, (str, bytes, Mapping)) or not isinstance(spec, Sequence):
        return [
            Error(
                f"THORN_EVENT_CHOICES must be a list, not {type(spec).__name__}.",
                hint=hint,
                id="thorn.E005",
            )
        ]
    errors: CheckResult = []
    for index, choice in enumerate(spec):
        value = choice
        if isinstance(choice, (list, tuple)):
            if len(choice) != 2:
                errors.append(
                    Error(
                        f"THORN_EVENT_CHOICES[{index}] has {len(choice)} items; "
                        "a pair is (name, label).",
                        hint=hint,
                        id="thorn.E005",
                    )
                )
                continue
            value = choice[0]
        try:
            validate_pattern(value)
        except ValueError as exc:
            errors.append(
                Error(
                    f"THORN_EVENT_CHOICES[{index}]: {exc}", hint=hint, id="thorn.E005"
                )
            )
    return errors


# -- thorn.E006 ------------------------------------------------------------------------


def _in_range(value: object, *, whole: bool, at_least_zero: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if whole and not isinstance(value, int):
        return False
    return value >= 0 if at_least_zero else value > 0


@register(TAG)
def check_numbers(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E006: timeouts, retry settings and sizes are sensible numbers."""
    settings = _settings()
    errors: CheckResult = []
    for name in (*POSITIVE_NUMBERS, *NON_NEGATIVE_NUMBERS):
        value = getattr(settings, name)
        whole = name in WHOLE_NUMBERS
        at_least_zero = name in NON_NEGATIVE_NUMBERS
        if _in_range(value, whole=whole, at_least_zero=at_least_zero):
            continue
        wanted = "a whole number" if whole else "a number"
        wanted += " of 0 or more" if at_least_zero else " above 0"
        errors.append(
            Error(
                f"{name}={value!r} is not {wanted}.",
                hint=f"Set {name} to {wanted}, or remove it to use the default "
                f"({Settings(None).get(name)!r}).",
                id="thorn.E006",
            )
        )
    return errors


# -- thorn.E007 ------------------------------------------------------------------------


@register(TAG)
def check_codecs(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E007: ``THORN_CODECS`` maps content types to codecs."""
    from ..codecs import Codecs

    spec = _settings().THORN_CODECS
    hint = (
        "Make THORN_CODECS a dict of content types to functions or import "
        "paths, e.g. {'application/json': 'proj.codecs:dump_json'}; None "
        "removes a built-in codec."
    )
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        return [
            Error(
                f"THORN_CODECS must be a dict, not {type(spec).__name__}.",
                hint=hint,
                id="thorn.E007",
            )
        ]
    try:
        Codecs(spec)
    except (ImproperlyConfigured, TypeError, ValueError) as exc:
        return [Error(str(exc), hint=hint, id="thorn.E007")]
    return []


# -- thorn.E008 ------------------------------------------------------------------------


@register(TAG)
def check_subscriber_model(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E008: ``THORN_SUBSCRIBER_MODEL`` names a usable model."""
    from ..environment.django import DjangoEnv, resolve_subscriber_model

    spec = _settings().THORN_SUBSCRIBER_MODEL
    hint = (
        "Set THORN_SUBSCRIBER_MODEL to 'app_label.ModelName' or "
        "'package.module:Model', or remove it to use thorn.django.models.Subscriber."
    )
    try:
        model = resolve_subscriber_model(spec, DjangoEnv.subscriber_cls)
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=hint, id="thorn.E008")]
    manager = getattr(model, "_default_manager", None)
    if not callable(getattr(manager, "matching", None)):
        return [
            Error(
                f"THORN_SUBSCRIBER_MODEL={spec!r} is not a model whose default "
                "manager has matching(event, user).",
                hint=hint + " A custom model's manager should be (or subclass) "
                "thorn.django.managers.SubscriberManager.",
                id="thorn.E008",
            )
        ]
    return []


@register(TAG)
def check_drf_permission_classes(app_configs: Any = None, **kwargs: Any) -> CheckResult:
    """thorn.E009: ``THORN_DRF_PERMISSION_CLASSES`` imports as permission classes."""
    if _settings().THORN_DRF_PERMISSION_CLASSES is None:
        return []
    try:
        from .rest_framework.permissions import extra_permission_classes
    except ImportError:  # Django REST framework is not installed
        return [
            Error(
                "THORN_DRF_PERMISSION_CLASSES is set but Django REST framework "
                "cannot be imported.",
                hint="pip install 'thorn[django]', or remove the setting.",
                id="thorn.E009",
            )
        ]
    try:
        extra_permission_classes()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Give a list of DRF permission classes or their import "
                "paths, e.g. ['rest_framework.permissions.IsAdminUser'].",
                id="thorn.E009",
            )
        ]
    return []
