"""Rate-limit arithmetic, sans I/O: the token bucket, and the controller that adapts it.

Two pieces, each taking the time as an argument (``now``, seconds on a monotonic clock):

- :class:`TokenBucket` is arithmetic only: ``rate`` tokens a second up to ``capacity``,
  ``take``, ``delay`` until the next token, ``pause`` everything for a while.
- :class:`RateController` decides how the bucket should change from what the server
  says, because the server's bucket may be shared with other processes using the token:

  - slow start: the burst begins at one request and doubles each time a reply's
    ``ratelimit-remaining`` shows room, up to the configured burst;
  - every reply's ``ratelimit-remaining`` lowers our tokens to the server's count, and
    a count falling to its last token slows our rate by a quarter, before any 429;
  - a 429 halves the rate and the burst (once for a volley of replies that carry the
    same news) and holds every request for the server's delay;
  - a limit the server states in words ("reduced to 6 requests per minute with a burst
    of 1") is adopted and held for a minute before probing up;
  - while requests succeed, the rate grows back by 2% of the configured rate a second.

Waiting for tokens (the FIFO queue of requests) is the I/O side's job: ``limiter.py``.
"""

from __future__ import annotations

import attrs

from .replies import Outcome

__all__ = ["RateController", "RateLimits", "TokenBucket"]

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
#: a 429 that gives no delay holds the bucket this long
_DEFAULT_PAUSE = 1.0


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

    def per_minute(self, is_create: bool) -> float:
        """The configured rate of one limit class."""
        return self.create_per_minute if is_create else self.other_per_minute

    def max_burst(self, is_create: bool) -> float:
        """The largest burst of one limit class: ``burst``, or a second's worth."""
        if self.burst is not None:
            return self.burst
        return max(1.0, self.per_minute(is_create) / 60.0)

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No client-side limit (the server's 429s still apply). For local emulators."""
        return cls(create_per_minute=1e12, other_per_minute=1e12, burst=1e12)


class TokenBucket:
    """``rate`` tokens a second, holding at most ``capacity``: the arithmetic, nothing more.

    Every method takes ``now``; the bucket never reads a clock. While paused it hands out
    nothing and earns nothing.
    """

    __slots__ = ("capacity", "paused_until", "rate", "tokens", "updated")

    def __init__(
        self, rate: float, capacity: float, *, now: float = 0.0, tokens: float | None = None
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be > 0")
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity if tokens is None else min(tokens, capacity)
        self.updated = now
        self.paused_until = 0.0

    def _refill(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
            self.updated = now

    def delay(self, now: float) -> float:
        """Seconds until one token is available at ``now`` (0 if one is there)."""
        if now < self.paused_until:
            return self.paused_until - now
        self._refill(now)
        if self.tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def available(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (0 while paused)."""
        if now < self.paused_until:
            return 0.0
        self._refill(now)
        return self.tokens

    def take(self, now: float) -> bool:
        """Take one token if one is available at ``now``."""
        if self.delay(now) > 0:
            return False
        self.tokens = max(0.0, self.tokens - 1.0)
        return True

    def pause(self, now: float, seconds: float) -> None:
        """Hand out nothing for ``seconds``; then one token, and the rest at the rate.

        Nothing accrues while paused: "available in 1 second" means one request then,
        not a burst of everything the pause would have earned.
        """
        self.paused_until = max(self.paused_until, now + max(0.0, seconds))
        self.tokens = 1.0
        self.updated = self.paused_until

    def set_rate(self, now: float, rate: float) -> None:
        """Change the refill rate from ``now`` on (tokens earned so far keep the old one)."""
        self._refill(now)
        self.rate = rate

    def set_capacity(self, capacity: float) -> None:
        """Change the largest burst; tokens above it are dropped."""
        self.capacity = capacity
        self.tokens = min(self.tokens, capacity)

    def lower(self, now: float, tokens: float) -> None:
        """Hold at most ``tokens`` now (never more than the bucket already has)."""
        self._refill(now)
        if tokens < self.tokens:
            self.tokens = max(0.0, tokens)


class RateController:
    """Keeps one :class:`TokenBucket` in step with the server, from each attempt's Outcome.

    It never raises the bucket above ``max_rate`` and ``max_capacity`` (the configured
    limit): the server's word can only slow us, and successes only win back what 429s
    took.
    """

    __slots__ = (
        "_cut_at",
        "_grown_at",
        "_hold_until",
        "_last_remaining",
        "bucket",
        "max_capacity",
        "max_rate",
    )

    def __init__(self, bucket: TokenBucket, *, max_capacity: float, now: float) -> None:
        self.bucket = bucket
        self.max_rate = bucket.rate
        self.max_capacity = max_capacity
        self._hold_until = 0.0
        self._cut_at = -1e18
        self._grown_at = now
        self._last_remaining = float("inf")

    @classmethod
    def per_minute(cls, per_minute: float, burst: float, *, now: float) -> RateController:
        """A bucket of ``per_minute`` a minute whose burst grows from 1 to ``burst``."""
        return cls(TokenBucket(per_minute / 60.0, 1.0, now=now), max_capacity=burst, now=now)

    def feedback(self, outcome: Outcome, now: float) -> None:
        """Learn from one attempt: its ``ratelimit-remaining``, success, or 429."""
        if outcome.remaining is not None:
            self.observe(outcome.remaining, now)
        if outcome.ok:
            self.grant(now)
        elif outcome.throttled:
            pause = _DEFAULT_PAUSE if outcome.server_delay is None else outcome.server_delay
            if outcome.stated_limit is not None:
                # The server told us the rate: no need to guess by halving.
                self.adopt(*outcome.stated_limit, now=now)
                self.bucket.pause(now, pause)
            else:
                self.throttled(pause, now)

    def _set_rate(self, now: float, rate: float) -> None:
        floor = self.max_rate * _MIN_RATE_FRACTION
        self.bucket.set_rate(now, min(self.max_rate, max(floor, rate)))

    def _may_cut(self, now: float) -> bool:
        # Replies to requests that were in flight together carry the same news: cut the
        # rate once for them, not once each (that would collapse it).
        if now - self._cut_at < 1.0 / self.bucket.rate:
            return False
        self._cut_at = self._grown_at = now
        return True

    def observe(self, remaining: float, now: float) -> None:
        """Follow the server's count of what is left (the ``ratelimit-remaining`` header).

        Lower our tokens to it, never raise them above ours: others may share the token.
        When the server's count is falling to its last token, slow down now rather than
        hear 429 next (a count that stays at 0 is a server with no burst, paced right).
        With plenty of room, let bursts grow.
        """
        bucket = self.bucket
        bucket.lower(now, remaining)
        falling = remaining < self._last_remaining
        self._last_remaining = remaining
        if remaining <= _LOW_WATER and falling:
            if self._may_cut(now):
                self._set_rate(now, bucket.rate * 0.75)
        elif remaining >= 2 * bucket.capacity and bucket.capacity < self.max_capacity:
            bucket.set_capacity(min(self.max_capacity, bucket.capacity * 2))

    def grant(self, now: float) -> None:
        """A request went through: win back some of the configured rate, by elapsed time."""
        elapsed = min(1.0, now - self._grown_at)  # an idle spell is no evidence of room
        self._grown_at = now
        rate = self.bucket.rate
        if rate < self.max_rate and now >= self._hold_until and elapsed > 0:
            self._set_rate(now, rate + self.max_rate * _GROWTH_PER_SECOND * elapsed)

    def throttled(self, seconds: float, now: float) -> None:
        """The server said 429: halve the rate and the burst, and hold for ``seconds``."""
        bucket = self.bucket
        if now >= bucket.paused_until and self._may_cut(now):
            self._set_rate(now, bucket.rate / 2)
            bucket.set_capacity(max(1.0, bucket.capacity / 2))
        bucket.pause(now, seconds)

    def adopt(self, per_minute: float, burst: float | None, *, now: float) -> None:
        """Adopt a limit the server stated, and keep to it for a while before probing up."""
        self._set_rate(now, per_minute / 60.0)
        if burst is not None:
            self.bucket.set_capacity(min(self.max_capacity, max(1.0, burst)))
        self._hold_until = now + _STATED_HOLD
