"""Management commands of Thorn's Django app."""
