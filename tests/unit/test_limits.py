"""Rate limits on fake time: the pure bucket, the controller, and the FIFO waiter, each alone."""

from __future__ import annotations

import asyncio
import math

import pytest

from replicate_async import errors as e
from replicate_async.limiter import Lane, RateLimiter
from replicate_async.protocol.limits import RateController, RateLimits, TokenBucket, lane_for
from replicate_async.protocol.replies import Failure, Outcome, Response


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


def ok(remaining: float | None = None) -> Outcome:
    return Outcome(Response(200, None, {}, b"{}", "GET", "u"), remaining=remaining)


def throttled(
    delay: float | None = None, stated: tuple[float, float | None] | None = None
) -> Outcome:
    reply = Response(429, None, {}, b"", "POST", "u")
    error = e.RateLimitError("429", status=429)
    return Outcome(
        reply, error, Failure.STATUS, server_delay=delay, stated_limit=stated, may_have_acted=False
    )


# -- the bucket: arithmetic only -------------------------------------------------------------


def test_arithmetic() -> None:
    bucket = TokenBucket(rate=2.0, capacity=2.0)
    assert bucket.take(0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.delay(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5)
    assert bucket.delay(100.0) == 0.0  # refills, but never above capacity
    assert bucket.take(100.0)
    assert bucket.take(100.0)
    assert not bucket.take(100.0)


def test_a_pause_hands_out_one_token_when_it_ends_not_a_burst() -> None:
    bucket = TokenBucket(rate=10.0, capacity=8.0)
    bucket.pause(0.0, 2.0)
    assert bucket.delay(0.0) == pytest.approx(2.0)
    assert bucket.available(1.0) == 0.0
    assert bucket.take(2.0)
    assert not bucket.take(2.0)
    assert bucket.take(2.1)


def test_lower_never_raises_and_capacity_clamps() -> None:
    bucket = TokenBucket(rate=1.0, capacity=10.0)
    bucket.lower(0.0, 3)
    assert bucket.available(0.0) == 3
    bucket.lower(0.0, 500)
    assert bucket.available(0.0) == 3
    bucket.set_capacity(2.0)
    assert bucket.available(0.0) == 2


# -- the controller: adapting to the server ---------------------------------------------------


def controller(rate: float = 10.0, capacity: float = 10.0) -> RateController:
    return RateController(TokenBucket(rate, capacity), max_capacity=capacity, now=0.0)


def test_limits_start_with_a_burst_of_one_and_lanes_pick_the_servers_bucket() -> None:
    limits = RateLimits()
    create = RateController.for_lane(limits, "create", now=0.0)
    assert create.bucket.rate == pytest.approx(10.0)
    assert create.bucket.capacity == 1.0  # slow start: until the server says
    assert create.max_capacity == math.inf  # the burst is learned
    assert limits.per_minute("other") / 60 == pytest.approx(50.0)
    assert limits.per_minute("get") / 60 == pytest.approx(50.0)
    low = RateController.for_lane(RateLimits(create_per_minute=6, burst=1), "create", now=0)
    assert low.max_capacity == 1 and low.bucket.rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="create_per_minute"):
        RateLimits(create_per_minute=0)
    with pytest.raises(ValueError, match="burst"):
        RateLimits(burst=-1)
    with pytest.raises(ValueError, match="reserve"):
        RateLimits(reserve=1.0)
    assert lane_for("POST", "/predictions", is_create=True) == "create"
    assert lane_for("GET", "/predictions/abc", is_create=False) == "get"
    assert lane_for("GET", "/predictions", is_create=False) == "other"
    assert lane_for("POST", "/predictions/abc/cancel", is_create=False) == "other"


def test_the_servers_burst_is_spent_at_once_less_the_reserve() -> None:
    c = RateController.for_lane(RateLimits(create_per_minute=6000), "create", now=0.0)
    assert c.bucket.take(0.0)
    first = c.ticket(0.0)
    c.feedback(ok(remaining=599), 0.0, first)  # a fresh token: 600 at once, as Replicate allows
    assert c.server_capacity == 600
    assert c.bucket.capacity == pytest.approx(570)  # 5% left for others by default
    assert c.bucket.available(0.0) == pytest.approx(569)
    tickets = []
    for _ in range(569):
        assert c.bucket.take(0.0)
        tickets.append(c.ticket(0.0))
    assert not c.bucket.take(0.0)
    # Replies to those come back: each count was the server's when it arrived, and what
    # we sent after it comes off, so the same budget is not handed out again.
    c.feedback(ok(remaining=598), 0.001, tickets[0])
    assert c.bucket.available(0.001) < 1
    assert c.bucket.rate == pytest.approx(100.0)  # and draining it ourselves is no news


def test_a_count_from_a_reply_held_open_is_brought_up_to_now() -> None:
    """A create held for a second reports what was left a second ago: no double spend."""
    c = RateController.for_lane(RateLimits(create_per_minute=60_000), "create", now=0.0)
    c.bucket.take(0.0)
    c.feedback(ok(remaining=599), 0.0, c.ticket(0.0))  # learns the burst of 600
    held = c.ticket(0.0)  # a create held open from now...
    for i in range(1000):  # ...while a thousand others go, at the rate, for a second
        c.ticket(i / 1000)
    c.bucket.lower(1.0, 0.0)  # and they took every token there was
    # its reply says 300 were left when it arrived: long spent since
    c.feedback(ok(remaining=300), 1.0, held)
    assert c.bucket.available(1.0) == 0.0


def test_remaining_lowers_our_tokens_to_the_servers_count() -> None:
    c = controller(rate=1.0)
    c.feedback(ok(remaining=3), 0.0)
    for _ in range(3):
        assert c.bucket.take(0.0)
    assert not c.bucket.take(0.0)


def test_the_servers_last_token_slows_us_before_a_429() -> None:
    c = controller()
    c.observe(3, 0.0)
    c.observe(1, 0.0)  # falling to its last token
    assert c.bucket.rate == pytest.approx(7.5)
    c.observe(0, 0.0)  # the same news from a reply in flight with it: no second cut
    assert c.bucket.rate == pytest.approx(7.5)
    c.observe(0, 1.0)  # steady at 0: a server without burst, and we are at its pace
    assert c.bucket.rate == pytest.approx(7.5)
    c.observe(2, 1.0)
    c.observe(1, 2.0)
    assert c.bucket.rate == pytest.approx(7.5 * 0.75)


def test_the_burst_is_learned_and_a_configured_one_is_a_ceiling() -> None:
    c = RateController.for_lane(RateLimits(), "other", now=0.0)
    c.feedback(ok(remaining=2999), 0.0)
    assert c.server_capacity == 3000 and c.bucket.capacity == pytest.approx(2850)
    c.feedback(ok(remaining=10), 1.0)  # a lower count later does not shrink what was seen
    assert c.server_capacity == 3000
    capped = RateController.for_lane(RateLimits(burst=5), "other", now=0.0)
    capped.feedback(ok(remaining=2999), 0.0)
    assert capped.bucket.capacity == 5 and capped.bucket.available(0.0) == 5


def test_a_429_halves_rate_and_burst_once_and_pauses_everyone() -> None:
    c = RateController(TokenBucket(10.0, 8.0), max_capacity=8.0, now=0.0)
    c.feedback(throttled(2.0), 0.0)
    c.feedback(throttled(2.0), 0.0)  # a second 429 from the same moment
    assert c.bucket.rate == pytest.approx(5.0)
    assert c.bucket.capacity == 4.0
    assert c.bucket.delay(0.0) == pytest.approx(2.0)
    assert c.bucket.take(2.0)  # one request when the pause ends...
    assert not c.bucket.take(2.0)  # ...not a burst of what the pause would have earned
    assert c.bucket.take(2.2)  # then the new rate


def test_a_429_without_a_delay_pauses_a_second() -> None:
    c = controller()
    c.feedback(throttled(None), 5.0)
    assert c.bucket.delay(5.0) == pytest.approx(1.0)


def test_successes_win_back_the_configured_rate() -> None:
    c = controller()
    c.feedback(throttled(0.0), 0.0)
    for _ in range(100):
        c.feedback(ok(), 0.0)  # many successes in no time are no evidence of room
    assert c.bucket.rate == pytest.approx(5.0)
    for second in range(1, 30):
        c.feedback(ok(), float(second))
    assert c.bucket.rate == pytest.approx(10.0)  # 2% of 10/s a second: back in 25 s


def test_a_stated_limit_is_adopted_and_held() -> None:
    c = RateController.for_lane(RateLimits(), "create", now=0.0)
    c.feedback(throttled(1.0, stated=(6.0, 1.0)), 0.0)
    assert c.bucket.rate == pytest.approx(0.1)
    assert c.bucket.capacity == 1.0
    assert c.bucket.delay(0.0) == pytest.approx(1.0)  # and everyone waits the delay
    for second in range(50):
        c.feedback(ok(), float(second))
    assert c.bucket.rate == pytest.approx(0.1)  # held for a while...
    c.feedback(ok(), 61.0)
    assert c.bucket.rate > 0.1  # ...then probing up again


def test_the_server_can_only_slow_us() -> None:
    c = controller()
    c.adopt(60_000, 100, now=0.0)  # a stated limit above the configured one
    assert c.bucket.rate == pytest.approx(10.0) and c.bucket.capacity == 10.0


# -- the waiter: FIFO, no busy loop, cancellation -------------------------------------------


def lane(t: FakeTime, rate: float, capacity: float = 1.0) -> Lane:
    bucket = TokenBucket(rate, capacity, now=t.now)
    return Lane(RateController(bucket, max_capacity=capacity, now=t.now), t.clock, t.sleep)


async def test_waiters_are_served_in_order_at_the_rate() -> None:
    t = FakeTime()
    waiting = lane(t, rate=10.0)
    order: list[tuple[int, float]] = []

    async def worker(i: int) -> None:
        await waiting.acquire()
        order.append((i, t.now))

    await asyncio.gather(*(worker(i) for i in range(20)))
    assert [i for i, _ in order] == list(range(20))
    assert order[-1][1] == pytest.approx(1.9)  # 1 at once, then 19 at 10/s


async def test_ten_thousand_waiters_no_busy_loop() -> None:
    t = FakeTime()
    waiting = lane(t, rate=1000.0)
    done: list[int] = []

    async def worker(i: int) -> None:
        await waiting.acquire()
        done.append(i)

    await asyncio.gather(*(worker(i) for i in range(10_000)))
    assert done == list(range(10_000))
    assert t.now == pytest.approx(9.999)
    assert t.sleeps <= 10_000  # one sleep per token at most: nobody spins


async def test_cancelled_waiter_takes_no_token() -> None:
    t = FakeTime()
    waiting = lane(t, rate=1.0)
    await waiting.acquire()

    async def slow_sleep(seconds: float) -> None:
        await asyncio.sleep(3600)

    waiting._sleep = slow_sleep  # the waiter sits in its sleep until cancelled
    waiter = asyncio.ensure_future(waiting.acquire())
    await asyncio.sleep(0.01)
    assert waiting.queued
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not waiting.queued
    # the cancelled waiter took nothing: the next token is still a second after the first
    assert waiting.bucket.delay(t.now) == pytest.approx(1.0)


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    t = FakeTime()
    waiting = lane(t, rate=1.0)
    waiting.bucket.take(0.0)
    got: list[str] = []

    async def waiter(name: str) -> None:
        await waiting.acquire()
        got.append(name)

    first = asyncio.ensure_future(waiter("first"))
    second = asyncio.ensure_future(waiter("second"))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 5)
    assert got == ["second"]


def test_a_limiter_has_a_lane_per_server_bucket() -> None:
    limiter = RateLimiter(RateLimits(create_per_minute=60, get_per_minute=120))
    assert limiter.lane("create") is limiter.create
    assert limiter.lane("get") is limiter.get
    assert limiter.lane("other") is limiter.other
    assert limiter.create.bucket.rate == pytest.approx(1.0)
    assert limiter.get.bucket.rate == pytest.approx(2.0)
    assert limiter.other.bucket.rate == pytest.approx(50.0)


async def test_a_lane_numbers_its_requests() -> None:
    t = FakeTime()
    waiting = lane(t, rate=10.0, capacity=5.0)
    first = await waiting.acquire()
    t.now = 0.5
    second = await waiting.acquire()
    assert (first.seq, second.seq) == (0, 1) and second.at == 0.5
    assert waiting.controller.sent == 2


async def test_a_waiter_that_comes_back_at_once_does_not_jump_the_queue() -> None:
    t = FakeTime()

    async def oversleep(seconds: float) -> None:  # wakes late: two tokens are ready by then
        t.now += seconds + 5
        await asyncio.sleep(0)

    bucket = TokenBucket(1.0, 2.0, now=0.0, tokens=0.0)
    waiting = Lane(RateController(bucket, max_capacity=2.0, now=0.0), t.clock, oversleep)
    got: list[str] = []

    async def first() -> None:
        await waiting.acquire()
        got.append("first")
        # Released the lock an instant ago; "second" is woken but has not run yet. The
        # token left must be its, not this newcomer's.
        await waiting.acquire()
        got.append("first again")

    async def second() -> None:
        await waiting.acquire()
        got.append("second")

    await asyncio.gather(first(), second())
    assert got == ["first", "second", "first again"]
