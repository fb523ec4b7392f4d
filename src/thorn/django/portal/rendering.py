"""How the portal renders its pages and serves its script and style sheet.

The portal is mounted with one ``include()``: it does not need to be in
``INSTALLED_APPS``. Its templates are looked up in the project's template
engines first (so a project may override them), then in the portal's own
folder; its two static files are served by a view of its own, with a
content hash in their URLs so browsers may keep them.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.template import TemplateDoesNotExist, loader
from django.template.backends.django import DjangoTemplates
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

__all__ = ["asset", "asset_url", "portal_url", "render_page"]

HERE = Path(__file__).resolve().parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static" / "thorn" / "portal"
#: The files :func:`asset` serves, with their content types.
ASSETS = {
    "portal.js": "text/javascript; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
}
#: How long browsers may keep an asset: its URL changes with its content.
ASSET_MAX_AGE = 7 * 24 * 3600

_CONTEXT_PROCESSORS = [
    "django.template.context_processors.request",
    "django.contrib.auth.context_processors.auth",
    "django.contrib.messages.context_processors.messages",
]


@functools.cache
def _own_engine() -> DjangoTemplates:
    """A template engine that reads the portal's own templates folder."""
    return DjangoTemplates(
        {
            "NAME": "thorn_portal",
            "DIRS": [str(TEMPLATE_DIR)],
            "APP_DIRS": False,
            "OPTIONS": {
                "context_processors": _CONTEXT_PROCESSORS,
                "debug": bool(settings.DEBUG),
            },
        }
    )


def _template(name: str) -> Any:
    try:
        return loader.get_template(name)
    except TemplateDoesNotExist:
        return _own_engine().get_template(name)


def render_page(
    request: HttpRequest,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> HttpResponse:
    """Render the portal template ``name`` for ``request``."""
    page = {
        "portal_css": asset_url(request, "portal.css"),
        "portal_js": asset_url(request, "portal.js"),
        **(context or {}),
    }
    body = _template(name).render(page, request)
    return HttpResponse(body, status=status)


@functools.cache
def _asset(name: str) -> tuple[bytes, str]:
    """The bytes of an asset and their hash (read once per process)."""
    data = (STATIC_DIR / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


def portal_url(request: HttpRequest, name: str, /, **kwargs: Any) -> str:
    """The path of the portal's page ``name``, in the portal instance (URL
    namespace) that answers ``request``."""
    match = getattr(request, "resolver_match", None)
    return reverse(
        f"thorn_portal:{name}",
        kwargs=kwargs or None,
        current_app=match.namespace if match is not None else None,
    )


def asset_url(request: HttpRequest, name: str) -> str:
    """The URL of an asset, with its content hash as the version."""
    return f"{portal_url(request, 'asset', name=name)}?v={_asset(name)[1]}"


@require_safe
def asset(request: HttpRequest, name: str) -> HttpResponse:
    """Serve ``portal.js`` or ``portal.css`` (public: they hold no data)."""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise Http404("no such file")
    data, digest = _asset(name)
    etag = f'"{digest}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(data, content_type=content_type)
    response["ETag"] = etag
    response["X-Content-Type-Options"] = "nosniff"
    patch_cache_control(response, public=True, max_age=ASSET_MAX_AGE)
    return response
