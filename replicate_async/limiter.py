"""The rate limiter a session draws from: two lanes, each a bucket, its controller and a queue.

The arithmetic and the adapting are pure (:mod:`.protocol.limits`); this module adds
the one thing they cannot do, waiting: a FIFO queue per lane, in which only the request
at its head sleeps, for exactly as long as the bucket says. Share one
:class:`RateLimiter` between clients that share an API token.
"""

from __future__ import annotations

import asyncio

from ._clock import Clock, Sleep, Timing
from .protocol.limits import RateController, RateLimits, TokenBucket
from .protocol.replies import Outcome

__all__ = ["Lane", "RateLimiter"]


class Lane:
    """One limit class (creates, or the rest): a bucket kept in step with the server.

    Waiters are served first come, first served: ``asyncio.Lock`` wakes its waiters in
    FIFO order, and only the waiter holding the lock sleeps for tokens. A waiter that is
    cancelled while queued or sleeping takes no token and gives up its place. Idle, it
    costs nothing: there is no background task.
    """

    __slots__ = ("_clock", "_lock", "_sleep", "controller")

    def __init__(self, controller: RateController, clock: Clock, sleep: Sleep) -> None:
        self.controller = controller
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()

    @property
    def bucket(self) -> TokenBucket:
        """The bucket's current state (rate, capacity, tokens)."""
        return self.controller.bucket

    @property
    def queued(self) -> bool:
        """Whether requests are waiting for a token."""
        return self._lock.locked()

    async def acquire(self) -> None:
        """Wait until a token is available, then take it."""
        bucket = self.controller.bucket
        # Fast path: nobody queued and a token ready.
        if not self._lock.locked() and bucket.take(self._clock()):
            return
        async with self._lock:
            while not bucket.take(self._clock()):
                await self._sleep(bucket.delay(self._clock()))

    def feedback(self, outcome: Outcome) -> None:
        """Let the controller learn from one attempt's outcome."""
        self.controller.feedback(outcome, self._clock())


class RateLimiter:
    """The two lanes of one API token. Share one between clients that share a token."""

    __slots__ = ("create", "limits", "other")

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
        self.create, self.other = (
            Lane(
                RateController.per_minute(
                    self.limits.per_minute(is_create), self.limits.max_burst(is_create), now=now
                ),
                clock,
                sleep,
            )
            for is_create in (True, False)
        )

    def lane(self, is_create: bool) -> Lane:
        """The lane a request draws from."""
        return self.create if is_create else self.other

    async def acquire(self, is_create: bool) -> None:
        """Wait for a token of the request's limit class."""
        await (self.create if is_create else self.other).acquire()

    def feedback(self, is_create: bool, outcome: Outcome) -> None:
        """Feed one attempt's outcome to the lane it drew from."""
        (self.create if is_create else self.other).feedback(outcome)
