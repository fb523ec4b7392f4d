"""The portal's URLs: ``path("webhooks/", include("thorn.django.portal.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import deliveries, rendering, views

app_name = "thorn_portal"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("<uuid:uuid>/", views.detail, name="detail"),
    path("<uuid:uuid>/edit/", views.edit, name="edit"),
    path("<uuid:uuid>/delete/", views.delete, name="delete"),
    path("<uuid:uuid>/disable/", views.disable, name="disable"),
    path("<uuid:uuid>/enable/", views.enable, name="enable"),
    path("<uuid:uuid>/secret/", views.reveal, name="reveal"),
    path("<uuid:uuid>/rotate/", views.rotate, name="rotate"),
    path("<uuid:uuid>/test/", views.test_event, name="test"),
    path("<uuid:uuid>/verify/", views.verify, name="verify"),
    path("deliveries/", deliveries.delivery_list, name="deliveries"),
    path(
        "deliveries/resend-failed/",
        deliveries.resend_failed,
        name="resend_failed",
    ),
    path(
        "deliveries/<uuid:delivery_id>/",
        deliveries.delivery_detail,
        name="delivery",
    ),
    path(
        "deliveries/<uuid:delivery_id>/resend/",
        deliveries.resend,
        name="resend",
    ),
    path("assets/<str:name>", rendering.asset, name="asset"),
]
