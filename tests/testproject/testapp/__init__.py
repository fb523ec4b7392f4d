"""Models with webhooks, for the Django tests."""
