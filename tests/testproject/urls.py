"""URLs of the test project: admin, the subscription API and schema, the portal."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("articles/", include("testproject.testapp.urls", namespace="article")),
    path("hooks/", include("thorn.django.rest_framework.urls", namespace="webhook")),
    path("api/", include("thorn.django.rest_framework.schema_urls")),
    path("webhooks/", include("thorn.django.portal.urls")),
]
