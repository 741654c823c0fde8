"""run_many(): bounded concurrency, completion order, failures kept, lazy inputs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from replicate_async import AsyncReplicate, PredictionFailed, RateLimits, RunResult
from replicate_async.testing import Emulator, RunContext
from tests.conftest import FAST_POLLING


class Gauge:
    """Counts predictions running at once inside the emulator."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def model(self, input: dict[str, Any], ctx: RunContext) -> int:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await ctx.sleep(float(input["seconds"]))
        finally:
            self.now -= 1
        if input.get("fail"):
            raise ValueError(f"item {input['i']} failed on purpose")
        return int(input["i"])


async def test_results_in_completion_order_with_bounded_concurrency(emulator: Emulator) -> None:
    gauge = Gauge()
    emulator.add_model("me/gauge", gauge.model)
    # later inputs are faster, so completion order differs from input order
    inputs = [{"i": i, "seconds": 0.05 * (12 - i)} for i in range(12)]
    async with AsyncReplicate(
        api_token=emulator.token,
        base_url=emulator.url,
        rate_limits=RateLimits.unlimited(),  # this test is about order, not pace
        polling=FAST_POLLING,
    ) as client:
        results: list[RunResult] = [
            r async for r in client.run_many("me/gauge", inputs, concurrency=4)
        ]
    assert sorted(r.index for r in results) == list(range(12))
    assert [r.index for r in results] != list(range(12))  # completion order, not input order
    assert all(r.ok and r.output == r.index and r.input is inputs[r.index] for r in results)
    assert gauge.peak == 4
    assert all(r.prediction is not None and r.prediction.status == "succeeded" for r in results)


async def test_a_failure_is_kept_in_its_result(client: AsyncReplicate, emulator: Emulator) -> None:
    gauge = Gauge()
    emulator.add_model("me/gauge", gauge.model)
    inputs = [{"i": i, "seconds": 0, "fail": i == 3} for i in range(6)]
    results = {r.index: r async for r in client.run_many("me/gauge", inputs, concurrency=3)}
    assert len(results) == 6
    failed = results[3]
    assert not failed.ok and isinstance(failed.error, PredictionFailed)
    assert failed.prediction is not None and failed.prediction.status == "failed"
    assert all(results[i].unwrap() == i for i in range(6) if i != 3)


async def test_inputs_are_pulled_lazily_and_break_cancels_the_rest(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    gauge = Gauge()
    emulator.add_model("me/gauge", gauge.model)
    pulled: list[int] = []

    def endless() -> Iterator[dict[str, Any]]:
        i = 0
        while True:
            pulled.append(i)
            yield {"i": i, "seconds": 0.05}
            i += 1

    got = 0
    async with client.run_many("me/gauge", endless(), concurrency=5, wait=False) as results:
        async for _ in results:
            got += 1
            if got == 10:
                break
    # only what the concurrency allowed was ever read from the endless source
    assert len(pulled) <= 10 + 5
    created = len(emulator.predictions)
    await asyncio.sleep(0.3)
    assert len(emulator.predictions) == created  # nothing more is created after the break


async def test_async_iterable_inputs(client: AsyncReplicate) -> None:
    async def source() -> AsyncIterator[dict[str, str]]:
        for word in ["a", "b", "c"]:
            yield {"text": word}

    outputs = sorted([r.output async for r in client.run_many("emulator/echo", source())])
    assert outputs == ["a", "b", "c"]


async def test_bad_arguments_fail_at_once(client: AsyncReplicate, emulator: Emulator) -> None:
    import pytest

    with pytest.raises(ValueError, match="concurrency"):
        client.run_many("emulator/echo", [], concurrency=0)
    with pytest.raises(ValueError, match="owner/name"):
        client.run_many("nope", [])
    assert [r async for r in client.run_many("emulator/echo", [])] == []
    assert sum(emulator.requests.values()) == 0
