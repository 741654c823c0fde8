"""Validators for configuration values: a bad setting is refused when it is made."""

from __future__ import annotations

import math
from typing import Any

import attrs

__all__ = ["seconds", "seconds_or_none"]


def _check(instance: Any, attribute: attrs.Attribute[Any], value: Any, *, none: bool) -> None:
    if value is None and none:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and value > 0):
        allowed = "a finite number of seconds > 0" + (", or None" if none else "")
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be {allowed}; got {value!r}"
        )


def seconds(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A duration: finite and positive (``nan``, ``inf`` and 0 would never end or never wait)."""
    _check(instance, attribute, value, none=False)


def seconds_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """A duration, or None for none."""
    _check(instance, attribute, value, none=True)
