"""``manage.py`` commands: the outbox's replay and purge (and the worker)."""
