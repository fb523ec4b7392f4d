"""Settings of the test project: SQLite by default, PostgreSQL with THORN_TEST_DB.

``THORN_TEST_DB=postgresql`` makes the tests start their own PostgreSQL
server (see ``tests/django/conftest.py``), which exports its address in
``THORN_TEST_PG_*`` before Django reads these settings.
"""

from __future__ import annotations

import os

from thorn.validators import ensure_protocol

SECRET_KEY = "thorn-tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "testproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
    "testproject.testapp",
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
        "DIRS": [],
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

STATIC_URL = "/static/"
# Tests create many users: the default hasher costs seconds each here.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if os.environ.get("THORN_TEST_DB", "sqlite") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("THORN_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("THORN_TEST_PG_PORT", "5432"),
            "NAME": os.environ.get("THORN_TEST_PG_NAME", "thorn"),
            "USER": os.environ.get("THORN_TEST_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("THORN_TEST_PG_PASSWORD", ""),
        }
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# Tests deliver to receivers on 127.0.0.1 and high ports; the tests that
# prove the default validators refuse them override this setting.
THORN_RECIPIENT_VALIDATORS = [ensure_protocol("http", "https")]
THORN_RETRY = False
THORN_SIGNAL_HONORS_TRANSACTION = True
