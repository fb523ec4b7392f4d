"""Settings of the example blog: SQLite, the admin, Thorn, its REST API and portal."""

from __future__ import annotations

import os
from pathlib import Path

from thorn.validators import ensure_protocol

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("BLOG_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("BLOG_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "blog.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"
# The webhooks portal (/webhooks/) is for every user, not only staff: it
# needs a login page of its own (accounts/login/, from django.contrib.auth).
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/webhooks/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "thorn.django",
    "articles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "blog" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("BLOG_DATABASE", str(BASE_DIR / "blog.sqlite3")),
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- Thorn -----------------------------------------------------------------
THORN_HMAC_SIGNER = "thorn.utils.hmac:sign"
THORN_BASE_URL = "http://127.0.0.1:8000"
THORN_EVENT_CHOICES = [
    "article.*",
    "article.created",
    "article.changed",
    "article.removed",
    "article.published",
    "article.tag_added",
    "article.tag_removed",
    "article.tags_cleared",
]
THORN_RETRY_DELAY = 1.0
# "outbox" stores every delivery (the portal lists them); run the engine with
# `manage.py thorn_worker` or `manage.py serve` then.
THORN_DISPATCHER = os.environ.get("BLOG_DISPATCHER", "default")
if DEBUG:
    # The demo's receiver runs on 127.0.0.1 and a high port, which the
    # default validators refuse (as they should in production). Only while
    # DEBUG is on, allow any http(s) address.
    THORN_RECIPIENT_VALIDATORS = [ensure_protocol("http", "https")]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"thorn": {"handlers": ["console"], "level": "WARNING"}},
}
