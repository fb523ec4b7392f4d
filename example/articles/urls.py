"""Article URLs."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "article"
urlpatterns = [path("<uuid:uuid>/", views.detail, name="detail")]
