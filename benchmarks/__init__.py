"""Runnable benchmarks: ``python -m benchmarks.NAME``; results in benchmarks/README.md."""
