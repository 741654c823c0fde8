"""Static type checks of the public API, run by mypy (see .ci/run)."""
