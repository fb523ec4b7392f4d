"""Thorn's Django app: the subscriber model, its admin, checks and migrations."""
