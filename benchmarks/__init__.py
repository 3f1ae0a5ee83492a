"""Benchmarks: `python -m benchmarks.run` (make bench) and the per-area scripts it calls."""
