"""Rate-limit arithmetic, sans I/O: the token bucket, and the controller that adapts it.

Replicate keeps a token bucket per API token for each kind of request, and says what is
left in every reply (``ratelimit-remaining``). The recorded replies show three buckets:
creates (599 left after a create: a burst of 600), prediction GETs (59999 left) and
everything else (2999). The client keeps a lane for each (:data:`LANES`), and in each:

- :class:`TokenBucket` is arithmetic only: ``rate`` tokens a second up to ``capacity``,
  ``take``, ``delay`` until the next token, ``pause`` everything for a while;
- :class:`RateController` decides how the bucket changes from what the server says:

  - slow start: the burst is one request until a reply reports the server's bucket;
  - **the server's grant is spent**: a reply's ``ratelimit-remaining`` was the server's
    count when the request arrived; brought up to now (plus what the server refilled
    since, less what we sent since) and less a reserve for other users of the token, it
    may go at once; the bucket learns the server's capacity (the most it ever
    reported, plus one). A reply held open for a minute says what was left a minute ago:
    brought up to now, it hands out nothing twice;
  - a count below ours lowers ours (others share the token), and one falling to its
    last token while we thought we had more slows our rate by a quarter, before a 429;
  - a 429 halves the rate and the burst (once for a volley of replies that carry the
    same news) and holds every request for the server's delay;
  - a limit the server states in words ("reduced to 6 requests per minute with a burst
    of 1") is adopted and held for a minute before probing up;
  - while requests succeed, the rate grows back by 2% of the configured rate a second.

The configured rates are ceilings: the server's word can only slow us, and its burst
is the only thing that lets us go faster than the rate. Waiting for tokens (the FIFO
queue of requests) is the I/O side's job: ``limiter.py``.
"""

from __future__ import annotations

import math
import re

import attrs

from .replies import Outcome

__all__ = ["LANES", "RateController", "RateLimits", "Ticket", "TokenBucket", "lane_for"]

#: the server's buckets, as the recorded replies show them
LANES = ("create", "get", "other")

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
#: the longest any server delay holds the bucket: a Retry-After of a billion seconds
#: must not freeze every client sharing the limiter (the retry policy gives up on it)
MAX_PAUSE = 120.0

_PREDICTION = re.compile(r"^/predictions/[^/?]+$")


def lane_for(method: str, path: str, *, is_create: bool) -> str:
    """Which of the server's buckets a request draws from (see :data:`LANES`)."""
    if is_create:
        return "create"
    if method == "GET" and _PREDICTION.match(path):
        return "get"
    return "other"


def _positive(_: object, attribute: attrs.Attribute[float], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"RateLimits.{attribute.name} must be > 0, got {value!r}")


def _at_least_one(_: object, attribute: attrs.Attribute[float], value: float | None) -> None:
    if value is not None and not value >= 1:
        raise ValueError(
            f"RateLimits.{attribute.name} must be at least 1 (a bucket that never holds a "
            f"whole token would never let a request go), got {value!r}"
        )


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"RateLimits.{attribute.name} must be in [0, 1), got {value!r}")


@attrs.frozen(kw_only=True)
class RateLimits:
    """Requests per minute the client allows itself, per API token: ceilings.

    Replicate documents 600 creates and 3000 other requests a minute (prediction GETs
    have a bucket of their own; its rate is undocumented, so the general one is used).
    An account without a payment method gets about 6 creates a minute with a burst of 1:
    pass ``RateLimits(create_per_minute=6, burst=1)`` there.

    ``burst``: the most requests of one kind that may go at once. None (the default)
    learns it from the server: one request until a reply says how many it would take,
    then what it says. ``reserve``: the share of the server's reported budget left for
    other users of the same token (other processes, other machines).
    """

    create_per_minute: float = attrs.field(default=600.0, validator=_positive)
    other_per_minute: float = attrs.field(default=3000.0, validator=_positive)
    get_per_minute: float = attrs.field(default=3000.0, validator=_positive)
    burst: float | None = attrs.field(default=None, validator=_at_least_one)
    reserve: float = attrs.field(default=0.05, validator=_fraction)

    def per_minute(self, lane: str) -> float:
        """The configured rate of one lane."""
        if lane == "create":
            return self.create_per_minute
        if lane == "get":
            return self.get_per_minute
        return self.other_per_minute

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No client-side limit (the server's 429s still apply). For local emulators."""
        return cls(create_per_minute=1e12, other_per_minute=1e12, get_per_minute=1e12, burst=1e12)


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

    def raise_to(self, now: float, tokens: float) -> None:
        """Hold at least ``tokens`` now, within the capacity (never while paused)."""
        self._refill(now)
        if now >= self.paused_until and tokens > self.tokens:
            self.tokens = min(self.capacity, tokens)


@attrs.frozen
class Ticket:
    """What a request took from a lane: its place in the lane's sends, and when."""

    seq: int
    at: float


class RateController:
    """Keeps one :class:`TokenBucket` in step with the server, from each attempt's Outcome.

    ``max_rate`` (the configured rate) and ``max_capacity`` (the configured burst, or
    infinity to learn it) are ceilings; ``reserve`` is the share of the server's budget
    left to others. ``sent`` counts the lane's requests: a reply's count, taken when its
    request arrived, is brought up to now by what was sent after it.
    """

    __slots__ = (
        "_configured_capacity",
        "_cut_at",
        "_grown_at",
        "_hold_until",
        "_last_remaining",
        "bucket",
        "max_capacity",
        "max_rate",
        "reserve",
        "sent",
        "server_capacity",
    )

    def __init__(
        self,
        bucket: TokenBucket,
        *,
        max_capacity: float,
        now: float,
        reserve: float = 0.0,
    ) -> None:
        self.bucket = bucket
        self.max_rate = bucket.rate
        self.max_capacity = max_capacity
        self._configured_capacity = max_capacity
        self.reserve = reserve
        #: the largest bucket the server has shown (None until a reply says)
        self.server_capacity: float | None = None
        #: requests sent through this lane so far
        self.sent = 0
        self._hold_until = 0.0
        self._cut_at = -1e18
        self._grown_at = now
        self._last_remaining = math.inf

    @classmethod
    def for_lane(cls, limits: RateLimits, lane: str, *, now: float) -> RateController:
        """The controller of one lane: slow start (a burst of one) until the server says."""
        ceiling = math.inf if limits.burst is None else limits.burst
        bucket = TokenBucket(limits.per_minute(lane) / 60.0, min(1.0, ceiling), now=now)
        return cls(bucket, max_capacity=ceiling, now=now, reserve=limits.reserve)

    def ticket(self, now: float) -> Ticket:
        """A request of this lane leaves (its token taken): its ticket, for its reply."""
        ticket = Ticket(self.sent, now)
        self.sent += 1
        return ticket

    def feedback(self, outcome: Outcome, now: float, ticket: Ticket | None = None) -> None:
        """Learn from one attempt: its ``ratelimit-remaining``, success, or 429.

        ``ticket`` is the one its request took: without it the count is taken as now's.
        """
        if outcome.remaining is not None:
            if ticket is None:
                self.observe(outcome.remaining, now)
            else:
                self.observe(
                    outcome.remaining,
                    now,
                    sent_since=self.sent - ticket.seq - 1,
                    elapsed=now - ticket.at,
                )
        if outcome.error is None:
            self.grant(now)
        elif outcome.throttled:
            pause = _DEFAULT_PAUSE if outcome.server_delay is None else outcome.server_delay
            pause = min(MAX_PAUSE, pause)
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

    def _learn(self, remaining: float) -> None:
        # A reply leaves ``remaining`` after taking one: the bucket holds at least one more.
        seen = remaining + 1
        if self.server_capacity is None or seen > self.server_capacity:
            self.server_capacity = seen
        usable = self.server_capacity * (1 - self.reserve)
        self.bucket.set_capacity(max(1.0, min(self.max_capacity, usable)))

    def observe(
        self, remaining: float, now: float, *, sent_since: int = 0, elapsed: float = 0.0
    ) -> None:
        """Follow the server's count of what is left (the ``ratelimit-remaining`` header).

        ``remaining`` was the count when the request arrived, ``elapsed`` seconds ago;
        ``sent_since`` requests of ours left after it. Brought up to now, the count says:
        below ours, lower ours (others may share the token), and falling to its last
        token while we thought we had more means they are using it: slow down now rather
        than hear 429 next (a count that stays at 0 is a server with no burst, paced
        right; one we drained ourselves is no news). Above ours, it is budget the server
        grants: spend it, less the reserve.
        """
        bucket = self.bucket
        self._learn(remaining)
        assert self.server_capacity is not None
        refilled = min(self.server_capacity, remaining + bucket.rate * max(0.0, elapsed))
        estimate = refilled - sent_since
        ours = bucket.available(now)
        falling = remaining < self._last_remaining
        self._last_remaining = remaining
        if estimate < ours:
            bucket.lower(now, estimate)
            if estimate <= _LOW_WATER and falling and self._may_cut(now):
                self._set_rate(now, bucket.rate * 0.75)
            return
        reserve = self.reserve * self.server_capacity
        # Only a real grant (a burst, a quiet spell) is spent. The count is the server's
        # when the request arrived, a little after its ticket, so it reads a touch high:
        # taking each small excess would wear the reserve away one fraction at a time.
        if estimate - reserve - ours >= max(1.0, reserve):
            bucket.raise_to(now, estimate - reserve)

    def grant(self, now: float) -> None:
        """A request went through: win back some of the configured rate, by elapsed time."""
        elapsed = min(1.0, now - self._grown_at)  # an idle spell is no evidence of room
        self._grown_at = now
        rate = self.bucket.rate
        if now >= self._hold_until:
            # A stated burst holds as long as the stated rate does.
            self.max_capacity = self._configured_capacity
        if rate < self.max_rate and now >= self._hold_until and elapsed > 0:
            self._set_rate(now, rate + self.max_rate * _GROWTH_PER_SECOND * elapsed)

    def throttled(self, seconds: float, now: float) -> None:
        """The server said 429: halve the rate, hold for ``seconds``.

        The burst is halved too, until the next reply shows the server's bucket again.
        """
        bucket = self.bucket
        if now >= bucket.paused_until and self._may_cut(now):
            self._set_rate(now, bucket.rate / 2)
            bucket.set_capacity(max(1.0, bucket.capacity / 2))
        bucket.pause(now, seconds)

    def adopt(self, per_minute: float, burst: float | None, *, now: float) -> None:
        """Adopt a limit the server stated, and keep to it for a while before probing up."""
        self._set_rate(now, per_minute / 60.0)
        if burst is not None:
            self.max_capacity = min(self.max_capacity, max(1.0, burst))
            self.bucket.set_capacity(self.max_capacity)
        self._hold_until = now + _STATED_HOLD
