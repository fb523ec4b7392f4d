"""The example blog project."""
