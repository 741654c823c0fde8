"""Client-side rate limiting: one token bucket per rate-limit class (creates, the rest).

The arithmetic is pure and takes the time as an argument; waiting is a thin async layer
on top with an injectable clock and sleep, so tests run on a fake clock instantly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import attrs

__all__ = ["RateLimits", "TokenBucket"]

Clock = Callable[[], float]
_EPSILON = 1e-9
Sleep = Callable[[float], Awaitable[None]]


def _positive(_: object, attribute: attrs.Attribute[float], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"RateLimits.{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class RateLimits:
    """Requests per minute the client allows itself, per API token.

    Replicate's defaults are 600 creates and 3000 other requests a minute; an account
    without a payment method gets about 6 creates a minute with a burst of 1, so pass
    ``RateLimits(create_per_minute=6, burst=1)`` there. ``burst`` (requests that may go
    at once after an idle spell) defaults to about one second's worth, at least 1: the
    server's bucket may be shared with other processes using the same token.
    """

    create_per_minute: float = attrs.field(default=600.0, validator=_positive)
    other_per_minute: float = attrs.field(default=3000.0, validator=_positive)
    burst: float | None = attrs.field(default=None, validator=_positive)

    def create_bucket(self, clock: Clock | None = None, sleep: Sleep | None = None) -> TokenBucket:
        """The bucket for the three create endpoints."""
        return TokenBucket.per_minute(self.create_per_minute, self.burst, clock, sleep)

    def other_bucket(self, clock: Clock | None = None, sleep: Sleep | None = None) -> TokenBucket:
        """The bucket for every other request."""
        return TokenBucket.per_minute(self.other_per_minute, self.burst, clock, sleep)

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No client-side limit (the server's 429s still apply). For local emulators."""
        return cls(create_per_minute=1e12, other_per_minute=1e12, burst=1e12)


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, holding at most ``capacity``.

    Waiters are served first come, first served: ``asyncio.Lock`` wakes its waiters in
    FIFO order, and only the waiter holding the lock sleeps for tokens. A waiter that is
    cancelled while queued or sleeping takes no token and gives up its place. Idle, it
    costs nothing: there is no background task.
    """

    __slots__ = (
        "_clock",
        "_lock",
        "_paused_until",
        "_sleep",
        "_tokens",
        "_updated",
        "capacity",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        capacity: float,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be > 0")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        # Start full: a fresh client may send its first burst at once.
        self._tokens = capacity
        self._updated = self._clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def per_minute(
        cls,
        per_minute: float,
        burst: float | None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> TokenBucket:
        """A bucket for ``per_minute`` requests a minute with the given (or default) burst."""
        rate = per_minute / 60.0
        capacity = burst if burst is not None else max(1.0, rate)
        return cls(rate, capacity, clock, sleep)

    # -- pure arithmetic -------------------------------------------------------------

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = now

    def delay(self, now: float) -> float:
        """Seconds until one token is available at ``now`` (0 if one is there)."""
        self._refill(now)
        if now < self._paused_until:
            return self._paused_until - now
        # Tolerance: refill arithmetic can leave 0.9999999 tokens, and a sleep of 1e-17 s
        # would not move a float clock: without it a waiter could spin forever.
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def take(self, now: float) -> bool:
        """Take one token if one is available at ``now``."""
        if self.delay(now) > 0:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        return True

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` (the server said 429) and empty the bucket."""
        now = self._clock()
        self._refill(now)
        self._tokens = min(self._tokens, 0.0)
        self._paused_until = max(self._paused_until, now + max(0.0, seconds))

    def observe(self, remaining: float) -> None:
        """Lower our count to what the server says is left; never raise it above ours."""
        now = self._clock()
        self._refill(now)
        self._tokens = min(self._tokens, max(0.0, remaining))

    # -- waiting -----------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until a token is available, then take it."""
        # Fast path: no queue and a token ready.
        if not self._lock.locked() and self.take(self._clock()):
            return
        async with self._lock:
            while True:
                wait = self.delay(self._clock())
                if wait <= 0:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return
                await self._sleep(wait)
