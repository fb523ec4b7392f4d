"""URLs of the example blog."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("articles/", include("articles.urls", namespace="article")),
    path("hooks/", include("thorn.django.rest_framework.urls", namespace="webhook")),
    path("api/", include("thorn.django.rest_framework.schema_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("webhooks/", include("thorn.django.portal.urls")),
]
