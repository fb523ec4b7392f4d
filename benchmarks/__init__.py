"""Thorn's benchmarks: ``make bench`` or ``python -m benchmarks.run``."""
