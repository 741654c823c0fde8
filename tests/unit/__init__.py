"""Unit tests of the pure modules (and transport decisions, with aioresponses)."""
