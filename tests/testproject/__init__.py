"""A Django project for Thorn's Django tests."""
