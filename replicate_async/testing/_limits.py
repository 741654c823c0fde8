"""The emulator's rate limits: a plain token bucket per API token and kind of request.

Its own arithmetic, deliberately not the client's adaptive buckets: a server bucket
simply refills at its rate up to its burst. As on Replicate, there are three: creates
(the three create endpoints; a burst of a minute's worth, 600: the recorded replies
show 599 left after one), prediction GETs (``GET /predictions/{id}``; a burst of 20
minutes' worth, 60,000: 59999 left after one) and everything else (a minute's worth,
3000). Replicate's 429 wordings are here too.
"""

from __future__ import annotations

import math
import time

from ._state import EmulatorConfig

__all__ = ["ServerBucket", "ServerLimits", "throttled_detail"]


class ServerBucket:
    """``per_second`` tokens a second, at most ``burst``; starts full."""

    __slots__ = ("burst", "per_second", "tokens", "updated")

    def __init__(self, per_second: float, burst: float, now: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now

    def take(self, now: float) -> bool:
        """Spend a token if there is one."""
        self._refill(now)
        # Lenient by a hair: a client that waited exactly the advertised time is served,
        # even if float arithmetic left 0.9999999 tokens.
        if self.tokens < 1 - 1e-9:
            return False
        self.tokens = max(0.0, self.tokens - 1)
        return True

    def remaining(self, now: float) -> int:
        """Whole tokens left (the ``ratelimit-remaining`` header)."""
        self._refill(now)
        return int(self.tokens)

    def reset(self, now: float) -> int:
        """Whole seconds until a token is there, at least 1 (``ratelimit-reset``)."""
        self._refill(now)
        return max(1, math.ceil((1 - self.tokens) / self.per_second))


class ServerLimits:
    """Every token's two buckets (creates, and the rest), made on first use."""

    __slots__ = ("_buckets", "_config")

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._buckets: dict[tuple[str, str], ServerBucket] = {}

    def bucket(self, token: str, kind: str) -> ServerBucket:
        """The bucket of one token and one kind: ``"create"``, ``"get"`` or ``"other"``."""
        key = (token, kind)
        found = self._buckets.get(key)
        if found is None:
            c = self._config
            per_minute, burst, minutes = {
                "create": (c.create_per_minute, c.create_burst, 1),
                "get": (c.get_per_minute, c.get_burst, 20),
            }.get(kind, (c.other_per_minute, c.other_burst, 1))
            found = self._buckets[key] = ServerBucket(
                per_minute / 60, burst or per_minute * minutes, time.monotonic()
            )
        return found


def throttled_detail(config: EmulatorConfig, bucket: ServerBucket, kind: str, reset: int) -> str:
    """The 429 detail as Replicate words it (the low-credit wording states the limit)."""
    if config.low_credit and kind == "create":
        return (
            "Request was throttled. Your rate limit for creating predictions is reduced to "
            f"{bucket.per_second * 60:g} requests per minute with a burst of {bucket.burst:g} "
            "requests while you have less than $5.0 in credit. Your rate limit resets in "
            f"~{reset}s."
        )
    unit = "second" if reset == 1 else "seconds"
    return f"Request was throttled. Expected available in {reset} {unit}."
