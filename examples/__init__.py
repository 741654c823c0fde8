"""Runnable examples of replicate_async in applications."""
