"""Database migrations of the thorn app."""
