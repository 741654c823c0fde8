"""Token buckets on a fake clock: arithmetic, adapting to the server, FIFO, cancellation."""

from __future__ import annotations

import asyncio
import json

import pytest

from replicate_async.limits import RateLimiter, RateLimits, TokenBucket, parse_stated_limit
from tests.conftest import PAYLOADS


class FakeTime:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        await asyncio.sleep(0)


def test_defaults_start_with_a_burst_of_one() -> None:
    create = RateLimits().create_bucket()
    assert create.rate == pytest.approx(10.0)
    assert create.max_capacity == pytest.approx(10.0)  # about one second's worth
    assert create.capacity == 1.0  # slow start
    other = RateLimits().other_bucket()
    assert other.rate == pytest.approx(50.0)
    low = RateLimits(create_per_minute=6, burst=1).create_bucket()
    assert low.max_capacity == 1
    assert low.rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="create_per_minute"):
        RateLimits(create_per_minute=0)
    with pytest.raises(ValueError, match="burst"):
        RateLimits(burst=-1)


def test_arithmetic() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=2.0, capacity=2.0, clock=t.clock)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5)
    assert bucket.delay(100.0) == 0.0  # refills, but never above capacity
    assert bucket.take(100.0)
    assert bucket.take(100.0)
    assert not bucket.take(100.0)


def test_observe_lowers_to_the_server_count_and_never_raises() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=1.0, capacity=10.0, clock=t.clock)
    bucket.observe(3)
    for _ in range(3):
        assert bucket.take(0.0)
    assert not bucket.take(0.0)
    bucket.observe(500)
    assert not bucket.take(0.0)


def test_the_servers_last_token_slows_us_before_a_429() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10.0, capacity=10.0, clock=t.clock)
    bucket.observe(3)
    bucket.observe(1)  # falling to its last token
    assert bucket.rate == pytest.approx(7.5)
    bucket.observe(0)  # the same news from a reply in flight with it: no second cut
    assert bucket.rate == pytest.approx(7.5)
    t.now = 1.0
    bucket.observe(0)  # steady at 0: a server without burst, and we are at its pace
    assert bucket.rate == pytest.approx(7.5)
    bucket.observe(2)
    t.now = 2.0
    bucket.observe(1)
    assert bucket.rate == pytest.approx(7.5 * 0.75)


def test_bursts_grow_while_the_server_has_room() -> None:
    t = FakeTime()
    bucket = TokenBucket.per_minute(600, None, t.clock)
    sizes = [bucket.capacity]
    for _ in range(5):
        bucket.observe(599)
        sizes.append(bucket.capacity)
    assert sizes == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_429_halves_rate_and_burst_once_and_pauses_everyone() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10.0, capacity=8.0, clock=t.clock)
    bucket.throttled(2.0)
    bucket.throttled(2.0)  # a second 429 from the same moment
    assert bucket.rate == pytest.approx(5.0)
    assert bucket.capacity == 4.0
    assert bucket.delay(0.0) == pytest.approx(2.0)
    assert bucket.take(2.0)  # one request when the pause ends...
    assert not bucket.take(2.0)  # ...not a burst of what the pause would have earned
    assert bucket.take(2.2)  # then the new rate


def test_successes_win_back_the_configured_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=10.0, capacity=10.0, clock=t.clock)
    bucket.throttled(0)
    for _ in range(100):
        bucket.grant()  # many successes in no time are no evidence of room
    assert bucket.rate == pytest.approx(5.0)
    for second in range(1, 30):
        t.now = float(second)
        bucket.grant()
    assert bucket.rate == pytest.approx(10.0)  # 2% of 10/s a second: back in 25 s


def test_a_stated_limit_is_adopted_and_held() -> None:
    body = json.loads((PAYLOADS / "recorded" / "error.429.throttled.low-credit.json").read_text())
    stated = parse_stated_limit(body["detail"])
    assert stated == (6.0, 1.0)
    t = FakeTime()
    bucket = TokenBucket.per_minute(600, None, t.clock)
    bucket.limit(*stated)
    assert bucket.rate == pytest.approx(0.1)
    assert bucket.capacity == 1.0
    for second in range(50):
        t.now = float(second)
        bucket.grant()
    assert bucket.rate == pytest.approx(0.1)  # held for a while...
    t.now = 61.0
    bucket.grant()
    assert bucket.rate > 0.1  # ...then probing up again


@pytest.mark.parametrize(
    "detail",
    [
        "Request was throttled. Expected available in 1 second.",
        "Request was throttled. Your rate limit resets in ~30s.",
        None,
    ],
)
def test_most_429s_state_no_limit(detail: str | None) -> None:
    assert parse_stated_limit(detail) is None


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


async def test_ten_thousand_waiters_no_busy_loop() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=1000.0, capacity=1.0, clock=t.clock, sleep=t.sleep)
    done: list[int] = []

    async def worker(i: int) -> None:
        await bucket.acquire()
        done.append(i)

    await asyncio.gather(*(worker(i) for i in range(10_000)))
    assert done == list(range(10_000))
    assert t.now == pytest.approx(9.999)
    assert t.sleeps <= 10_000  # one sleep per token at most: nobody spins


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


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=1.0, capacity=1.0, clock=t.clock)
    bucket.take(0.0)
    got: list[str] = []

    async def waiter(name: str) -> None:
        await bucket.acquire()
        got.append(name)

    first = asyncio.ensure_future(waiter("first"))
    second = asyncio.ensure_future(waiter("second"))
    await asyncio.sleep(0)
    first.cancel()
    t.now = 1.0  # a token is due: it goes to "second", not to the cancelled one
    await asyncio.wait_for(second, 5)
    assert got == ["second"]


def test_a_limiter_shares_its_buckets() -> None:
    limiter = RateLimiter(RateLimits(create_per_minute=60))
    assert limiter.bucket(True) is limiter.create
    assert limiter.bucket(False) is limiter.other
    assert limiter.create.rate == pytest.approx(1.0)
