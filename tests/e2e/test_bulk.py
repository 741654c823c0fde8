"""Bulk jobs end to end: the GET budget held at scale, cancellation that saves money, progress.

Limits are scaled up (creates 1,000/s with Replicate's burst of 600; the rest 500/s) so
that thousands of predictions take seconds; the emulator enforces them.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest

from replicate_async import AsyncReplicate, PollPolicy, Progress, RateLimits
from replicate_async.testing import Emulator, RunContext
from tests.conftest import cancel_after, none_running

CREATE, OTHER = 60_000, 30_000  # a minute
LIMITS = RateLimits(create_per_minute=CREATE, other_per_minute=OTHER, get_per_minute=OTHER)
POLLS = ("GET", None)


def scaled_emulator(**kwargs: Any) -> Emulator:
    return Emulator(
        enforce_limits=True,
        create_per_minute=CREATE,
        create_burst=600,
        other_per_minute=OTHER,
        get_per_minute=OTHER,
        **kwargs,
    )


async def sleepy(input: dict[str, Any], ctx: RunContext) -> int:
    await ctx.sleep(float(input["seconds"]))
    return int(input["i"])


def _clients(task: asyncio.Task[Any]) -> bool:
    """Whether a task runs the client's code (not the emulator's, not aiohttp's)."""
    code = getattr(task.get_coro(), "cr_code", None)
    where = getattr(code, "co_filename", "")
    return "replicate_async" in where and "testing" not in where


async def test_two_thousand_predictions_stay_inside_the_get_budget_every_second() -> None:
    rng = random.Random(7)
    inputs = [{"i": i, "seconds": rng.uniform(0.3, 1.0)} for i in range(2000)]
    policy = PollPolicy(share=0.1)  # 50 polls a second at most, of the 500 allowed
    budget = policy.share * OTHER / 60
    async with scaled_emulator() as emulator:
        emulator.add_model("me/sleepy", sleepy)
        async with AsyncReplicate(
            api_token=emulator.token, base_url=emulator.url, rate_limits=LIMITS, polling=policy
        ) as client:
            outputs = {
                r.output async for r in client.run_many("me/sleepy", inputs, concurrency=1000)
            }
            assert client._poller._task is None or client._poller._task.done()  # gone when idle
            assert client._session.transport.connector_stats()[0] == 0
        assert outputs == set(range(2000))
        polls = emulator.request_times("GET", "/predictions/{id}") + emulator.request_times(
            "GET", "/predictions"
        )
        assert emulator.count_status(429) == 0
        assert len(polls) / 2000 < 0.2
        peak = emulator.peak_rate("GET")  # every GET here is a poll (single or sweep)
        assert peak <= budget * 1.25 + 1, f"{peak} polls in one second, budget {budget:g}"
        # Nothing of the client's is left running: no poller, no clean-up, no task.
        assert [t for t in asyncio.all_tasks() if _clients(t)] == []


async def test_cancelling_run_cancels_the_prediction(emulator: Emulator) -> None:
    emulator.add_model("me/sleepy", sleepy)
    async with AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as client:
        # Without a held create: the id is known when the caller gives up.
        await cancel_after(client.run("me/sleepy", input={"i": 1, "seconds": 30}, wait=False))
        assert await none_running(emulator)
        (job,) = emulator.predictions.values()
        assert job.status == "canceled"


async def test_cancelling_a_held_create_finds_and_cancels_what_it_made(
    emulator: Emulator,
) -> None:
    emulator.add_model("me/sleepy", sleepy)
    async with AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as client:
        # A held create (Prefer: wait): cancelled in the air, before any id came back.
        task = asyncio.ensure_future(client.run("me/sleepy", input={"i": 2, "seconds": 30}))
        await asyncio.sleep(0.3)
        assert client._session.transport.connector_stats()[0] == 1  # held open
        await cancel_after(task, 0)
        assert await none_running(emulator)
        (job,) = emulator.predictions.values()
        assert job.status == "canceled"
        assert emulator.count("GET", "/predictions") >= 1  # found by input and time


async def test_a_held_create_carries_cancel_after_when_the_lookup_cannot_help() -> None:
    async with (
        Emulator(start_delay=60) as emulator,  # never starts in time
        AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as client,
    ):
        emulator.fail_next("GET", "/predictions", status=503, times=100)  # no lookups
        await cancel_after(client.run("emulator/echo", input={"text": "x"}, cancel_after=5))
        # The server's own deadline ends it: aborted, since it never started.
        assert await none_running(emulator, within=8)
        (job,) = emulator.predictions.values()
        assert job.status == "aborted"


async def test_cancelling_run_many_leaves_nothing_running() -> None:
    async with Emulator() as emulator:
        emulator.add_model("me/sleepy", sleepy)
        async with AsyncReplicate(
            api_token=emulator.token, base_url=emulator.url, rate_limits=RateLimits.unlimited()
        ) as client:
            inputs = [{"i": i, "seconds": 30} for i in range(40)]

            async def consume() -> None:
                async for _ in client.run_many("me/sleepy", inputs, concurrency=40):
                    pass

            task = asyncio.ensure_future(consume())
            for _ in range(200):  # until all forty are created (ten seconds at most)
                if len(emulator.predictions) == 40:
                    break
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client._session.transport.connector_stats()[0] <= 1  # the clean-up's own
            assert await none_running(emulator)
        assert {job.status for job in emulator.predictions.values()} == {"canceled"}
        assert len(emulator.predictions) == 40  # nothing created twice or after


async def test_cancel_on_exit_false_leaves_predictions_running(emulator: Emulator) -> None:
    emulator.add_model("me/sleepy", sleepy)
    async with AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as client:
        await cancel_after(
            client.run("me/sleepy", input={"i": 1, "seconds": 2}, cancel_on_exit=False)
        )
        await asyncio.sleep(0.5)
        (job,) = emulator.predictions.values()
        assert not job.terminal
        assert emulator.count("POST", "/predictions/{id}/cancel") == 0


async def test_progress_counts_every_input_through_to_its_end(emulator: Emulator) -> None:
    emulator.add_model("me/sleepy", sleepy)

    async def fail_some(input: dict[str, Any], ctx: RunContext) -> int:
        await ctx.sleep(0.05)
        if input["i"] % 5 == 0:
            raise ValueError("five")
        return int(input["i"])

    emulator.add_model("me/flaky", fail_some)
    seen: list[Progress] = []
    async with AsyncReplicate(
        api_token=emulator.token, base_url=emulator.url, rate_limits=RateLimits.unlimited()
    ) as client:
        inputs = [{"i": i} for i in range(20)]
        results = [r async for r in client.run_many("me/flaky", inputs, progress=seen.append)]
    assert len(results) == 20
    last = seen[-1]
    assert (last.total, last.queued, last.creating, last.running) == (20, 0, 0, 0)
    assert (last.succeeded, last.failed, last.canceled, last.finished) == (16, 4, 0, 20)
    assert last.rate > 0 and last.eta == 0
    assert all(a.finished <= b.finished for a, b in itertools.pairwise(seen))  # never backwards
    assert all(s.creating + s.running + s.finished + (s.queued or 0) == 20 for s in seen)

    # a generator has no length: no total, no queue, no ETA
    gen_seen: list[Progress] = []
    async with AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as client:
        async for _ in client.run_many(
            "emulator/echo", ({"text": str(i)} for i in range(3)), progress=gen_seen.append
        ):
            pass
    assert gen_seen[-1].total is None and gen_seen[-1].eta is None
    assert gen_seen[-1].succeeded == 3


async def test_a_broken_progress_callback_stops_the_run_with_its_error(
    client: AsyncReplicate,
) -> None:
    def broken(_: Progress) -> None:
        raise RuntimeError("my bar broke")

    with pytest.raises(RuntimeError, match="my bar broke"):
        async for _ in client.run_many("emulator/echo", [{"text": "x"}] * 3, progress=broken):
            pass
    with pytest.raises(TypeError, match="progress must be a callable"):
        client.run_many("emulator/echo", [], progress="bar")  # type: ignore[arg-type]


async def test_cancelling_a_stream_cancels_its_prediction(emulator: Emulator) -> None:
    async with AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as client:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in client.stream("emulator/stream", input={"tokens": 100, "delay": 0.05}):
                first.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(first.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await none_running(emulator)
        (job,) = emulator.predictions.values()
        assert job.status == "canceled"


async def test_leaving_run_many_by_async_with_still_cancels_what_it_started() -> None:
    # aclose() (leaving async with) then the iterator's drop must not cut the clean-up's
    # own requests: they belong to the client, not to the job.
    async with Emulator() as emulator:
        emulator.add_model("me/sleepy", sleepy)
        async with AsyncReplicate(
            api_token=emulator.token, base_url=emulator.url, rate_limits=RateLimits.unlimited()
        ) as client:
            inputs = [{"i": 0, "seconds": 0}] + [{"i": i, "seconds": 30} for i in range(1, 6)]
            async with client.run_many("me/sleepy", inputs, concurrency=6) as results:
                async for _ in results:
                    break
            assert await none_running(emulator)
        statuses = sorted(job.status for job in emulator.predictions.values())
        assert statuses == ["canceled"] * 5 + ["succeeded"]
