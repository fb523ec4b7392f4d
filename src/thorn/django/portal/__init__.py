"""The subscriber portal: a self-service webhooks page for a Django site's users.

Mount it with one line (``thorn.django`` must be installed)::

    path("webhooks/", include("thorn.django.portal.urls"))

Logged-in users see, create and manage their own subscriptions there, and
browse their deliveries. See ``docs/portal.md``.
"""
