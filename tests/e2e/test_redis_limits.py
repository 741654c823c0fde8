"""Rate limits shared through a real Redis: arithmetic, processes, failures, fairness."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replicate_async import AsyncReplicate, RateLimits, RedisRateLimits
from replicate_async.redis_limits import SharedLimiterError
from replicate_async.testing import Emulator
from tests.redis_server import RedisServer, available

pytestmark = pytest.mark.skipif(
    not available(), reason="redis-server is not installed (.ci/run installs it)"
)

ROOT = Path(__file__).parents[2]
CREATE = ("POST", "/models/{owner}/{name}/predictions")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Any]:
    import redis.asyncio

    client = redis.asyncio.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


_MADE: list[RedisRateLimits] = []


def limits(url: str, **kwargs: Any) -> RedisRateLimits:
    shared = RedisRateLimits(url, **kwargs)
    shared.bind("r8_test-token")
    _MADE.append(shared)
    return shared


@pytest.fixture(autouse=True)
async def _close_limits() -> AsyncIterator[None]:
    # Whatever a test asserted, the Redis connections it opened are closed.
    yield
    while _MADE:
        await _MADE.pop().aclose()


async def test_the_script_reserves_slots_a_bucket_allows(redis_server: RedisServer) -> None:
    # 6 a second after a burst of 10 (no reserve): ten at once, then one each 1/6 s
    # (slow enough that the time the calls take refills next to nothing).
    shared = limits(redis_server.url, create_per_minute=360, burst=10, reserve=0)
    lane = shared.create
    waits = []
    for _ in range(16):
        wait, left = await shared._acquire(lane)  # type: ignore[misc]
        waits.append(wait)
    assert waits[:10] == [0.0] * 10
    # Then each slot an interval after the one before (to within the calls' own time).
    for n, wait in enumerate(waits[10:], start=1):
        assert abs(wait - n / 6) < 0.05, waits
    assert left < 0  # queued: five past the burst
    assert shared.round_trips == {"acquire": 16, "pause": 0, "observe": 0}
    await shared.aclose()


async def test_the_keys_expire_once_the_bucket_would_be_full(
    redis_server: RedisServer, redis_client: Any
) -> None:
    shared = limits(redis_server.url, create_per_minute=600, burst=5, reserve=0)
    for _ in range(5):
        await shared._acquire(shared.create)
    keys = [key.decode() for key in await redis_client.keys("*")]
    assert keys == [f"{{replicate_async:limits:{shared._token_key}:create}}"]
    assert "r8_test-token" not in keys[0]  # only a digest of the token
    ttl = await redis_client.pttl(keys[0])
    # Full again 0.5 s after (5 taken at 10 a second), plus a minute's margin.
    assert 60_000 < ttl <= 60_600
    await shared.aclose()


async def test_a_pause_and_a_stated_limit_are_shared(redis_server: RedisServer) -> None:
    one = limits(redis_server.url, create_per_minute=6000, burst=100, reserve=0)
    two = limits(redis_server.url, create_per_minute=6000, burst=100, reserve=0)
    await one._pause(one.create, 2.0, None)
    wait, _ = await two._acquire(two.create)  # type: ignore[misc]
    assert 1.9 < wait <= 2.0  # the other worker waits out the 429's delay too
    # A stated lower limit ("reduced to 6 requests per minute with a burst of 1").
    await one._pause(one.create, 0.0, (6.0, 1.0))
    first, _ = await two._acquire(two.create)  # type: ignore[misc]
    second, _ = await two._acquire(two.create)  # type: ignore[misc]
    assert second - first == pytest.approx(10.0, abs=0.05)  # one each 10 s, for all
    await one.aclose()
    await two.aclose()


async def test_a_low_count_from_the_server_pulls_the_shared_bucket_down(
    redis_server: RedisServer,
) -> None:
    shared = limits(redis_server.url, create_per_minute=600, burst=100, reserve=0)
    wait, left = await shared._acquire(shared.create)  # type: ignore[misc]
    assert (wait, left) == (0.0, 99)
    await shared._observe(shared.create, 0.0)  # the server says nothing is left
    wait, _ = await shared._acquire(shared.create)  # type: ignore[misc]
    assert 0.09 < wait <= 0.11  # the next token, at 10 a second
    await shared.aclose()


async def test_acquire_sleeps_once_for_its_slot_with_one_round_trip(
    redis_server: RedisServer,
) -> None:
    shared = limits(redis_server.url, create_per_minute=600, burst=2, reserve=0)
    started = time.monotonic()
    for _ in range(6):
        await shared.create.acquire()
    took = time.monotonic() - started
    assert 0.35 < took < 0.6  # 2 at once, then 4 at 10 a second
    assert shared.round_trips["acquire"] == 6  # no polling of Redis while waiting
    await shared.aclose()


WORKER = """
import asyncio, json, sys, time
from replicate_async import RedisRateLimits

async def main(url, seconds, skew):
    if skew:
        real = time.time
        time.time = lambda: real() + skew  # a worker whose wall clock is an hour off
    shared = RedisRateLimits(url, create_per_minute=3000, burst=5, reserve=0)
    shared.bind("r8_shared-token")
    print("READY", flush=True)
    sys.stdin.readline()
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        await shared.create.acquire()
        count += 1
    print(json.dumps({"count": count, "trips": shared.round_trips["acquire"]}), flush=True)
    await shared.aclose()

asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
"""


async def test_workers_in_separate_processes_share_one_bucket_fairly(
    redis_server: RedisServer,
) -> None:
    seconds = 2.0
    workers = []
    for skew in (0, 0, 3600):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            redis_server.url,
            str(seconds),
            str(skew),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None
        assert (await asyncio.wait_for(process.stdout.readline(), 30)).strip() == b"READY"
        workers.append(process)
    for process in workers:  # all start at once
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    counts = []
    for process in workers:
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["trips"] == result["count"]  # one round trip an acquire
        counts.append(result["count"])
    total = sum(counts)
    # 50 a second shared, a burst of 5: about 105 in 2 s, whatever the number of workers.
    assert 85 <= total <= 115, counts
    # Fair: each a third, within a few slots (the skewed clock changes nothing).
    assert max(counts) - min(counts) <= 0.2 * total / 3 + 3, counts


async def test_redis_going_away_falls_back_to_a_local_share_and_comes_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    shared = limits(redis_server.url, create_per_minute=6000, burst=50, timeout=0.3)
    await shared.create.acquire()
    redis_server.kill()
    caplog.set_level(logging.WARNING, logger="replicate_async.limits")
    started = time.monotonic()
    for _ in range(5):  # served by the local share: no error, and no hang
        await shared.create.acquire()
    assert time.monotonic() - started < 2.0
    warnings = [r.message for r in caplog.records if "did not answer" in r.message]
    assert len(warnings) == 1  # warned once
    redis_server.start()
    await asyncio.sleep(1.1)  # the retry interval
    before = shared.round_trips["acquire"]
    await shared.create.acquire()
    await shared.create.acquire()
    assert shared.round_trips["acquire"] >= before + 2  # through Redis again
    assert any("answers again" in r.message for r in caplog.records)
    await shared.aclose()


async def test_on_error_raise_sends_nothing(redis_server: RedisServer) -> None:
    shared = limits(redis_server.url, on_error="raise", timeout=0.3)
    redis_server.kill()
    with pytest.raises(SharedLimiterError, match="nothing was sent"):
        await shared.create.acquire()
    await shared.aclose()


async def two_clients_create(limits: Callable[[], Any]) -> tuple[int, int, float]:
    """(creates, 429s, seconds) of two clients with ``limits()``, 25 creates each.

    The emulator enforces 20 creates a second after a burst of 10.
    """
    async with Emulator(
        enforce_limits=True, create_per_minute=1200, create_burst=10, tls=False
    ) as emulator:
        clients = [
            AsyncReplicate(emulator.token, emulator.url, rate_limits=limits()) for _ in range(2)
        ]
        try:
            started = time.monotonic()
            await asyncio.gather(
                *(
                    c.models.predictions.create("emulator/echo", input={"text": str(n)})
                    for c in clients
                    for n in range(25)
                )
            )
            took = time.monotonic() - started
        finally:
            for c in clients:
                await c.aclose()
        return emulator.count(*CREATE), emulator.count_status(429), took


async def test_clients_sharing_redis_stay_inside_the_servers_limit(
    redis_server: RedisServer,
) -> None:
    # Two clients that each paced themselves at the server's limit would meet 429s.
    # Sharing through Redis: none.
    created, throttled, took = await two_clients_create(
        lambda: RedisRateLimits(redis_server.url, create_per_minute=1200, burst=10)
    )
    assert created == 50
    assert throttled == 0
    # 50 creates: 9.5 at once (the burst less the reserve), the rest at 19 a second.
    assert took > 1.8
    # Each client with its own local limiter at the full rate: the storm this prevents.
    _, throttled, _ = await two_clients_create(lambda: RateLimits(create_per_minute=1200, burst=10))
    assert throttled > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="on_error"):
        RedisRateLimits("redis://x", on_error="ignore")
    with pytest.raises(TypeError, match="redis:// URL"):
        RedisRateLimits(42)
    shared = RedisRateLimits("redis://:secret@example.com:6379/0")
    assert "secret" not in repr(shared)
    shared.bind("r8_a")
    with pytest.raises(ValueError, match="another API token"):
        shared.bind("r8_b")
    assert os.environ.get("X") is None


async def test_a_redis_restart_mid_job_loses_no_request_and_repeats_none(
    redis_server: RedisServer,
) -> None:
    async with Emulator(tls=False) as emulator:
        shared = RedisRateLimits(redis_server.url, create_per_minute=3000, burst=5, timeout=0.3)
        async with AsyncReplicate(emulator.token, emulator.url, limiter=shared) as client:
            inputs = [{"text": str(n)} for n in range(80)]
            jobs = client.run_many("emulator/echo", inputs, concurrency=10)

            async def outage() -> None:
                await asyncio.sleep(0.4)
                redis_server.kill()
                await asyncio.sleep(1.0)
                redis_server.start()

            blackout = asyncio.ensure_future(outage())
            results = [result async for result in jobs]
            await blackout
        assert sorted(r.output for r in results if r.ok) == sorted(str(n) for n in range(80))
        created = sorted(job.input["text"] for job in emulator.predictions.values())
        assert created == sorted(str(n) for n in range(80))  # each exactly once
        assert shared.round_trips["acquire"] > 0


async def test_a_pause_is_capped_and_wakes_the_sleepers_to_reserve_again(
    redis_server: RedisServer,
) -> None:
    shared = limits(redis_server.url, create_per_minute=60, burst=1, reserve=0)
    await shared.create.acquire()  # the one token
    started = time.monotonic()
    sleeper = asyncio.ensure_future(shared.create.acquire())  # its slot: 1 s from now
    await asyncio.sleep(0.2)
    await shared._pause(shared.create, 2.0, None)  # a 429 said: 2 s
    await sleeper
    # Woken, it reserved again: after the pause, not at its old slot.
    assert time.monotonic() - started > 2.0
    # An absurd Retry-After is capped (two minutes, as the local limiter caps it).
    await shared._pause(shared.create, 1e9, None)
    wait, _ = await shared._acquire(shared.create)  # type: ignore[misc]
    assert 100 < wait <= 121


async def test_a_stated_limit_that_expires_gives_no_burst_at_once(
    redis_server: RedisServer, redis_client: Any
) -> None:
    shared = limits(redis_server.url, create_per_minute=600, burst=100, reserve=0)
    await shared._pause(shared.create, 0.0, (6.0, 1.0))  # "6 a minute, a burst of 1"
    await shared._acquire(shared.create)
    # The stated limit runs out (its key expires): the bucket does not hand out the
    # difference at once, it refills from where it was.
    await redis_client.delete(f"{{replicate_async:limits:{shared._token_key}:create}}:stated")
    waits = [(await shared._acquire(shared.create))[0] for _ in range(5)]  # type: ignore[index]
    assert all(wait > 0 for wait in waits[1:]), waits
