"""The real clocks and sleep: the defaults of the session's injectable sense of time.

Library code reads time and sleeps only through a :class:`Timing` it was given, so that
rate-limit, retry and polling tests run on fake time, instantly. This is the one module
that names the real ``time.monotonic``, ``time.time`` and ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import attrs

__all__ = ["Clock", "Sleep", "Timing"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@attrs.frozen
class Timing:
    """A monotonic clock (intervals, deadlines), a wall clock (Unix time) and a sleep."""

    monotonic: Clock = time.monotonic
    wall: Clock = time.time
    sleep: Sleep = asyncio.sleep
