"""DRF URL dispatch table: mount with ``include(..., namespace="webhook")``."""

from __future__ import annotations

from django.urls import path

from .views import SubscriberDetail, SubscriberList

app_name = "webhook"

urlpatterns = [
    path("", SubscriberList.as_view(), name="list"),
    path("<uuid:uuid>/", SubscriberDetail.as_view(), name="detail"),
]
