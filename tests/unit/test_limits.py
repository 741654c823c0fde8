"""Token bucket arithmetic on a fake clock, FIFO waiting and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from replicate_async.limits import RateLimits, TokenBucket


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def test_defaults_and_burst() -> None:
    limits = RateLimits()
    create = limits.create_bucket()
    assert create.rate == pytest.approx(10.0) and create.capacity == pytest.approx(10.0)
    low = RateLimits(create_per_minute=6, burst=1).create_bucket()
    assert low.capacity == 1 and low.rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="create_per_minute"):
        RateLimits(create_per_minute=0)


def test_arithmetic() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=2.0, capacity=2.0, clock=t.clock)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5)
    assert bucket.delay(100.0) == 0.0  # refills, but never above capacity
    assert bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)


def test_observe_only_lowers() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=1.0, capacity=10.0, clock=t.clock)
    bucket.observe(3)
    assert bucket.delay(0.0) == 0.0
    for _ in range(3):
        assert bucket.take(0.0)
    assert not bucket.take(0.0)
    bucket.observe(500)
    assert not bucket.take(0.0)


def test_pause_holds_everything() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=100.0, capacity=100.0, clock=t.clock)
    bucket.pause(5)
    assert bucket.delay(0.0) == pytest.approx(5.0)
    assert bucket.take(5.0)


async def test_waiters_are_served_in_order_at_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10.0, capacity=1.0, clock=t.clock, sleep=t.sleep)
    order: list[tuple[int, float]] = []

    async def worker(i: int) -> None:
        await bucket.acquire()
        order.append((i, t.now))

    await asyncio.gather(*(worker(i) for i in range(20)))
    assert [i for i, _ in order] == list(range(20))
    assert order[-1][1] == pytest.approx(1.9)  # 1 at once, then 19 at 10/s


async def test_cancelled_waiter_takes_no_token() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1.0)
    await bucket.acquire()
    waiter = asyncio.ensure_future(bucket.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not bucket._lock.locked()
    # the cancelled waiter took nothing: the next token is still ~1 s after the first
    assert 0.9 < bucket.delay(bucket._clock()) <= 1.0
