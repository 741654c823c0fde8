"""A bare ``break`` lets go at once: no connection held, no work left running.

Each test breaks out of an iterator without ``async with`` or ``aclose()`` and checks the
connection pool and the emulator on the very next statement: CPython drops the iterator
there, and each of ours lets go in ``__del__``, synchronously. What ``stream`` and
``run_many`` started is then cancelled on the server, in the background; nothing else is
sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from replicate_async import AsyncReplicate, RateLimits
from replicate_async.testing import Emulator, RunContext
from tests.conftest import FAST_POLLING, none_running


def in_use(client: AsyncReplicate) -> int:
    return client._session.transport.connector_stats()[0]


async def quiet_for(emulator: Emulator, seconds: float = 0.3) -> int:
    """Requests the emulator gets in the next ``seconds`` (0 when nothing runs any more)."""
    before = sum(emulator.requests.values())
    await asyncio.sleep(seconds)
    return sum(emulator.requests.values()) - before


async def test_stream(client: AsyncReplicate, emulator: Emulator) -> None:
    async for _ in client.stream("emulator/stream", input={"tokens": 50, "delay": 0.02}):
        break
    assert in_use(client) == 0
    assert await none_running(emulator)  # what it started is cancelled...
    (job,) = emulator.predictions.values()
    assert job.status == "canceled"
    assert emulator.count("POST", "/predictions/{id}/cancel") == 1  # ...with one request
    assert await quiet_for(emulator) == 0


async def test_watch(client: AsyncReplicate, emulator: Emulator) -> None:
    p = await client.predictions.create(model="emulator/sleep", input={"seconds": 2})
    seen = 0
    async for _ in client.predictions.watch(p.id):
        seen += 1
        if seen == 2:
            break
    assert in_use(client) == 0
    assert await quiet_for(emulator) == 0  # no poll after the break


async def test_list_and_search() -> None:
    async with (
        Emulator(page_size=2) as emulator,
        AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as client,
    ):
        for i in range(5):
            await client.predictions.create(model="emulator/echo", input={"text": str(i)})
        async for _ in client.predictions.list():
            break
        assert in_use(client) == 0
        assert emulator.count("GET", "/predictions") == 1  # the first page, no more
        async for _ in client.models.search("emulator"):
            break
        assert in_use(client) == 0
        assert emulator.count("QUERY", "/models") == 1
        assert await quiet_for(emulator) == 0


async def test_run_many_cancels_its_tasks_and_closes_their_connections() -> None:
    async def model(input: dict[str, Any], ctx: RunContext) -> int:
        await ctx.sleep(float(input["seconds"]))
        return int(input["i"])

    async with Emulator() as emulator:
        emulator.add_model("me/slow", model)
        async with AsyncReplicate(
            api_token=emulator.token,
            base_url=emulator.url,
            rate_limits=RateLimits.unlimited(),
            polling=FAST_POLLING,
        ) as client:
            # The first input is instant; the other four hold a Prefer: wait connection each.
            inputs = [{"i": i, "seconds": 0 if i == 0 else 30} for i in range(5)]
            async for result in client.run_many("me/slow", inputs, concurrency=5):
                assert result.index == 0
                assert in_use(client) == 4  # the four slow creates, held open by the server
                break
            assert in_use(client) == 0  # closed on the very next statement
            # The four still running are found and cancelled; nothing more is created.
            assert await none_running(emulator)
            statuses = sorted(job.status for job in emulator.predictions.values())
            assert statuses == ["canceled"] * 4 + ["succeeded"]
            assert len(emulator.predictions) == 5
            assert await quiet_for(emulator) == 0
