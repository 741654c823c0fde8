"""Rate limits and faults end to end: the client against an emulator that enforces them.

Rates are scaled up (100 creates a second instead of 10) so each test runs in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from replicate_async import AsyncReplicate, RateLimiter, RateLimits, RetryPolicy, Timeouts
from replicate_async.errors import CreateOutcomeUnknownError
from replicate_async.testing import Emulator
from tests.conftest import FAST_POLLING

CREATE = ("POST", "/models/{owner}/{name}/predictions")


async def create_many(client: AsyncReplicate, n: int) -> list[str]:
    async def one(i: int) -> str:
        p = await client.predictions.create(model="emulator/echo", input={"text": str(i)})
        return p.id

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_a_burst_over_the_limit_gets_no_429_when_client_and_server_agree() -> None:
    limits = {"create_per_minute": 6000, "create_burst": 100}  # 100/s, 1 s of burst
    async with (
        Emulator(enforce_limits=True, **limits) as emu,
        AsyncReplicate(
            api_token=emu.token, base_url=emu.url, rate_limits=RateLimits(create_per_minute=6000)
        ) as client,
    ):
        started = time.monotonic()
        ids = await create_many(client, 250)
        elapsed = time.monotonic() - started
    assert len(set(ids)) == 250
    assert emu.count_status(429) == 0
    assert emu.count(*CREATE) == 250  # nothing was sent twice
    assert elapsed >= 1.4  # it was paced: 250 at 100/s after a burst, not all at once


async def test_a_server_with_a_lower_limit_converges_without_errors() -> None:
    """Another process shares the token: the server allows 20/s where we think 100/s."""
    emu = Emulator(enforce_limits=True, create_per_minute=1200, create_burst=5)
    async with (
        emu,
        AsyncReplicate(
            api_token=emu.token, base_url=emu.url, rate_limits=RateLimits(create_per_minute=6000)
        ) as client,
    ):
        ids = await create_many(client, 80)
    assert len(set(ids)) == 80  # every create succeeded: no error surfaced
    throttled = emu.count_status(429)
    assert throttled <= 12, f"{throttled} 429s: the client did not converge"
    assert emu.count(*CREATE) == 80 + throttled  # only 429s were re-sent


async def test_a_limit_stated_by_the_server_is_adopted() -> None:
    """The low-credit 429 says the limit: 6/min with a burst of 1, here scaled to 2/s."""
    limiter = RateLimiter()
    async with (
        Emulator(
            enforce_limits=True, create_per_minute=120, create_burst=1, low_credit=True
        ) as emu,
        AsyncReplicate(api_token=emu.token, base_url=emu.url, limiter=limiter) as client,
    ):
        ids = await create_many(client, 6)
        assert limiter.create.bucket.rate == pytest.approx(2.0)
    assert len(set(ids)) == 6
    assert emu.count_status(429) <= 2


async def test_429s_beyond_the_budget_raise_rate_limit_error() -> None:
    from replicate_async.errors import RateLimitError

    emu = Emulator(enforce_limits=True, other_per_minute=60, other_burst=1)
    async with (
        emu,
        AsyncReplicate(
            api_token=emu.token,
            base_url=emu.url,
            rate_limits=RateLimits(other_per_minute=60000),
            retry=RetryPolicy(max_throttled=1),
        ) as client,
    ):
        await client.account.get()
        with pytest.raises(RateLimitError, match="throttled") as info:
            await client.account.get()
    assert info.value.retry_after == 1.0
    assert info.value.detail == "Request was throttled. Expected available in 1 second."


async def test_faults_on_creates_never_duplicate_and_never_lose_a_result() -> None:
    """Resets after the create happened, 5xx before it did, replies slower than the timeout."""
    async with (
        Emulator() as emu,
        AsyncReplicate(
            api_token=emu.token,
            base_url=emu.url,
            polling=FAST_POLLING,
            timeouts=Timeouts(read=0.5),
            rate_limits=RateLimits.unlimited(),
        ) as client,
    ):
        emu.reset_next(*CREATE, times=3)  # created, then the connection dropped
        emu.fail_next(*CREATE, status=502, times=2)  # a proxy said no: not created
        emu.delay_next(*CREATE, 1.0, times=2)  # created after the client gave up waiting
        inputs = [{"text": f"item-{i}"} for i in range(30)]
        results = [r async for r in client.run_many("emulator/echo", inputs, wait=False)]

    assert sorted(r.index for r in results) == list(range(30))  # a result for every input
    by_text = Counter(str((job.input or {}).get("text")) for job in emu.predictions.values())
    assert max(by_text.values()) == 1  # no input was created twice
    ok = {r.output for r in results if r.ok}
    created = set(by_text)
    assert ok == created  # every prediction that exists came back as a result
    failed = [r for r in results if not r.ok]
    assert len(failed) <= 2  # only creates that provably never happened fail
    assert all(isinstance(r.error, CreateOutcomeUnknownError) for r in failed)
    assert len(created) + len(failed) == 30
