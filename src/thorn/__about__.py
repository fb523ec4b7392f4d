"""Version of the thorn package."""

__version__ = "2.0.0a1"
