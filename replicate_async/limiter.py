"""The rate limiter a session draws from: a lane per server bucket, each with a FIFO queue.

The arithmetic and the adapting are pure (:mod:`.protocol.limits`); this module adds
the one thing they cannot do, waiting: a FIFO queue per lane, in which only the request
at its head sleeps, for exactly as long as the bucket says. Share one
:class:`RateLimiter` between clients that share an API token.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ._clock import Clock, Sleep, Timing
from .protocol.limits import RateController, RateLimits, Ticket, TokenBucket
from .protocol.replies import Outcome

__all__ = ["Lane", "LaneLike", "Limiter", "RateLimiter"]


class LaneLike(Protocol):
    """What the session needs of a lane: a token to send, and the reply's lesson."""

    @property
    def bucket(self) -> TokenBucket:
        """The lane's rate and burst (the poller sizes its share by its rate)."""

    @property
    def queued(self) -> int:
        """How many requests wait for a token."""

    async def acquire(self) -> Ticket:
        """Wait for a token; the ticket goes with the request's reply."""

    def feedback(self, outcome: Outcome, ticket: Ticket | None = None) -> None:
        """Learn from one attempt's outcome."""


class Limiter(Protocol):
    """A rate limiter: :class:`RateLimiter`, or the shared ``RedisRateLimits``."""

    limits: RateLimits

    def lane(self, kind: str) -> LaneLike:
        """The lane of ``"create"``, ``"get"`` or ``"other"`` requests."""

    @property
    def other(self) -> LaneLike:
        """The lane of everything but creates and prediction GETs."""


class Lane:
    """One of the server's buckets (creates, prediction GETs, the rest), kept in step.

    Waiters are served first come, first served: ``asyncio.Lock`` wakes its waiters in
    FIFO order, and only the waiter holding the lock sleeps for tokens. A newcomer takes
    the fast path only when nobody waits at all: between one waiter's release of the lock
    and the next one's wake-up the lock looks free, and a newcomer must not slip in then.
    A waiter that is cancelled while queued or sleeping takes no token and gives up its
    place. Idle, it costs nothing: there is no background task.
    """

    __slots__ = ("_clock", "_lock", "_sleep", "_waiting", "controller")

    def __init__(self, controller: RateController, clock: Clock, sleep: Sleep) -> None:
        self.controller = controller
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._waiting = 0  # requests queued or sleeping for a token

    @property
    def bucket(self) -> TokenBucket:
        """The bucket's current state (rate, capacity, tokens)."""
        return self.controller.bucket

    @property
    def queued(self) -> int:
        """How many requests are waiting for a token."""
        return self._waiting

    async def acquire(self) -> Ticket:
        """Wait until a token is available, then take it; the ticket goes with its reply."""
        controller = self.controller
        bucket = controller.bucket
        # Fast path: nobody waiting and a token ready.
        if not self._waiting and bucket.take(now := self._clock()):
            return controller.ticket(now)
        self._waiting += 1
        try:
            async with self._lock:
                while not bucket.take(self._clock()):
                    await self._sleep(bucket.delay(self._clock()))
        finally:
            self._waiting -= 1
        return controller.ticket(self._clock())

    def feedback(self, outcome: Outcome, ticket: Ticket | None = None) -> None:
        """Let the controller learn from one attempt's outcome (and its request's ticket)."""
        self.controller.feedback(outcome, self._clock(), ticket)


class RateLimiter:
    """The lanes of one API token. Share one between clients that share a token."""

    __slots__ = ("create", "get", "limits", "other")

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.limits = limits or RateLimits()
        real = Timing()
        clock = clock or real.monotonic
        sleep = sleep or real.sleep
        now = clock()
        #: the three-prediction-create endpoints
        self.create = Lane(RateController.for_lane(self.limits, "create", now=now), clock, sleep)
        #: ``GET /predictions/{id}``
        self.get = Lane(RateController.for_lane(self.limits, "get", now=now), clock, sleep)
        #: everything else
        self.other = Lane(RateController.for_lane(self.limits, "other", now=now), clock, sleep)

    def lane(self, kind: str) -> Lane:
        """The lane a request draws from: ``"create"``, ``"get"`` or ``"other"``."""
        if kind == "create":
            return self.create
        return self.get if kind == "get" else self.other
