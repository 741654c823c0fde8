"""Client-side rate limiting: one token bucket per rate-limit class (creates, the rest).

The arithmetic is pure and takes the time as an argument; waiting is a thin async layer
on top with an injectable clock and sleep, so tests run on a fake clock instantly.

The bucket adapts to what the server says, because the server's bucket may be shared
with other processes using the same token:

- ``observe(remaining)`` after every reply lowers our tokens to the server's count, and
  when the server is down to its last token slows our rate a little (before it says 429);
- ``throttled(delay)`` after a 429 halves the rate and holds every waiter for the delay;
- ``limit(per_minute, burst)`` adopts a limit the server states in words ("reduced to 6
  requests per minute with a burst of 1") and holds it for a minute before probing up;
- while requests succeed (``grant``) the rate grows back over time, up to the configured
  one, and each reply showing plenty of room doubles the burst, up to the configured one.

Bursts start at one token (slow start): a fresh client cannot flood a server whose limit
is lower than it thinks before the first reply has told it so.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import attrs

__all__ = ["RateLimiter", "RateLimits", "TokenBucket", "parse_stated_limit"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# Refill arithmetic can leave 0.9999999 tokens, and a sleep of 1e-17 s does not move a
# float clock: without this tolerance a waiter could spin forever.
_EPSILON = 1e-9
#: rate is never cut below this fraction of the configured rate by 429s alone
_MIN_RATE_FRACTION = 1 / 1000
#: while requests succeed, the rate grows back by this fraction of the configured rate
#: per second (tied to time, not to the number of successes: at a high rate successes
#: come so fast that growth per success would overshoot again at once)
_GROWTH_PER_SECOND = 1 / 50
#: a server down to this many tokens is about to say 429: slow down now
_LOW_WATER = 1.0
#: how long a limit the server stated holds before the rate may grow again
_STATED_HOLD = 60.0


def _positive(_: object, attribute: attrs.Attribute[float], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"RateLimits.{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class RateLimits:
    """Requests per minute the client allows itself, per API token.

    Replicate's defaults are 600 creates and 3000 other requests a minute; an account
    without a payment method gets about 6 creates a minute with a burst of 1, so pass
    ``RateLimits(create_per_minute=6, burst=1)`` there. ``burst`` (requests that may go
    at once after an idle spell) defaults to about one second's worth, at least 1.
    """

    create_per_minute: float = attrs.field(default=600.0, validator=_positive)
    other_per_minute: float = attrs.field(default=3000.0, validator=_positive)
    burst: float | None = attrs.field(default=None, validator=_positive)

    def create_bucket(self, clock: Clock | None = None, sleep: Sleep | None = None) -> TokenBucket:
        """A bucket for the three create endpoints."""
        return TokenBucket.per_minute(self.create_per_minute, self.burst, clock, sleep)

    def other_bucket(self, clock: Clock | None = None, sleep: Sleep | None = None) -> TokenBucket:
        """A bucket for every other request."""
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
        "_cut_at",
        "_grown_at",
        "_hold_until",
        "_last_remaining",
        "_lock",
        "_paused_until",
        "_sleep",
        "_tokens",
        "_updated",
        "capacity",
        "max_capacity",
        "max_rate",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        capacity: float,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        *,
        initial_capacity: float | None = None,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be > 0")
        self.max_rate = rate
        self.max_capacity = capacity
        self.rate = rate
        self.capacity = min(capacity, initial_capacity) if initial_capacity else capacity
        self._clock = clock or time.monotonic
        self._sleep = sleep or asyncio.sleep
        self._tokens = self.capacity
        self._updated = self._clock()
        self._paused_until = 0.0
        self._hold_until = 0.0
        self._cut_at = -1e18
        self._grown_at = self._updated
        self._last_remaining = float("inf")
        self._lock = asyncio.Lock()

    @classmethod
    def per_minute(
        cls,
        per_minute: float,
        burst: float | None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> TokenBucket:
        """A bucket for ``per_minute`` requests a minute; bursts grow from 1 to ``burst``."""
        rate = per_minute / 60.0
        capacity = burst if burst is not None else max(1.0, rate)
        return cls(rate, capacity, clock, sleep, initial_capacity=1.0)

    # -- pure arithmetic -------------------------------------------------------------

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._updated = now

    def delay(self, now: float) -> float:
        """Seconds until one token is available at ``now`` (0 if one is there)."""
        self._refill(now)
        if now < self._paused_until:
            return self._paused_until - now
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def available(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (0 while paused)."""
        self._refill(now)
        return 0.0 if now < self._paused_until else self._tokens

    def take(self, now: float) -> bool:
        """Take one token if one is available at ``now``."""
        if self.delay(now) > 0:
            return False
        self._tokens = max(0.0, self._tokens - 1.0)
        return True

    def _set_rate(self, rate: float) -> None:
        # Tokens earned so far were earned at the old rate.
        self._refill(self._clock())
        self.rate = min(self.max_rate, max(self.max_rate * _MIN_RATE_FRACTION, rate))

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds``; then one may go, and the rest at the rate.

        Nothing accrues while paused: "available in 1 second" means one request then,
        not a burst of everything the pause would have earned.
        """
        now = self._clock()
        self._paused_until = max(self._paused_until, now + max(0.0, seconds))
        self._tokens = 1.0
        self._updated = self._paused_until

    def _may_cut(self, now: float) -> bool:
        # Replies to requests that were in flight together carry the same news: cut the
        # rate once for them, not once each (that would collapse it).
        if now - self._cut_at < 1.0 / self.rate:
            return False
        self._cut_at = self._grown_at = now
        return True

    def throttled(self, seconds: float) -> None:
        """The server said 429: halve the rate and the burst, and hold for ``seconds``."""
        now = self._clock()
        if now >= self._paused_until and self._may_cut(now):
            self._set_rate(self.rate / 2)
            self.capacity = max(1.0, self.capacity / 2)
        self.pause(seconds)

    def observe(self, remaining: float) -> None:
        """Follow the server's count of what is left (the ``ratelimit-remaining`` header).

        Lower our tokens to it, never raise them above ours: others may share the token.
        When the server's count is falling to its last token, slow down now rather than
        hear 429 next (a count that stays at 0 is a server with no burst, paced right).
        With plenty of room, let bursts grow.
        """
        now = self._clock()
        self._refill(now)
        if remaining < self._tokens:
            self._tokens = max(0.0, remaining)
        falling = remaining < self._last_remaining
        self._last_remaining = remaining
        if remaining <= _LOW_WATER and falling:
            if self._may_cut(now):
                self._set_rate(self.rate * 0.75)
        elif remaining >= 2 * self.capacity and self.capacity < self.max_capacity:
            self.capacity = min(self.max_capacity, self.capacity * 2)

    def grant(self) -> None:
        """A request went through: win back some of the configured rate, by elapsed time."""
        now = self._clock()
        elapsed = min(1.0, now - self._grown_at)  # an idle spell is no evidence of room
        self._grown_at = now
        if self.rate < self.max_rate and now >= self._hold_until and elapsed > 0:
            self._set_rate(self.rate + self.max_rate * _GROWTH_PER_SECOND * elapsed)

    def limit(self, per_minute: float, burst: float | None) -> None:
        """Adopt a limit the server stated, and keep to it for a while before probing up."""
        now = self._clock()
        self._refill(now)
        self._set_rate(per_minute / 60.0)
        if burst is not None:
            self.capacity = min(self.max_capacity, max(1.0, burst))
            self._tokens = min(self._tokens, self.capacity)
        self._hold_until = now + _STATED_HOLD

    # -- waiting -----------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until a token is available, then take it."""
        # Fast path: nobody queued and a token ready.
        if not self._lock.locked() and self.take(self._clock()):
            return
        async with self._lock:
            while True:
                wait = self.delay(self._clock())
                if wait <= 0:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return
                await self._sleep(wait)


class RateLimiter:
    """The two buckets of one API token. Share one between clients that share a token."""

    __slots__ = ("create", "limits", "other")

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.limits = limits or RateLimits()
        self.create = self.limits.create_bucket(clock, sleep)
        self.other = self.limits.other_bucket(clock, sleep)

    def bucket(self, is_create: bool) -> TokenBucket:
        """The bucket a request draws from."""
        return self.create if is_create else self.other


_STATED_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*requests? per minute", re.IGNORECASE)
_STATED_BURST = re.compile(r"burst of\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_stated_limit(detail: str | None) -> tuple[float, float | None] | None:
    """``(per_minute, burst)`` from a 429 detail that states the limit, else None.

    Replicate says so when it lowers an account's limit: "Your rate limit for creating
    predictions is reduced to 6 requests per minute with a burst of 1 requests ...".
    """
    if not detail:
        return None
    rate = _STATED_RATE.search(detail)
    if rate is None:
        return None
    burst = _STATED_BURST.search(detail)
    return float(rate.group(1)), float(burst.group(1)) if burst else None
