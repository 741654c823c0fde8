"""Leaks: 10,000 mixed operations and 1,000 abandoned ones leave nothing behind.

The emulator runs in a process of its own, so this process holds only the client: its
connections, tasks, file descriptors, temporary files and memory are what is counted.
Abandoned means each way a caller walks away: ``break`` out of a stream, cancelling a
download, and a stream whose ``asyncio.wait_for`` ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from replicate_async import AsyncReplicate, FileOutput, RateLimits
from tests.conftest import FAST_POLLING

TOKEN = "r8_leaks"
OPERATIONS = 10_000
ABANDONED = 1_000
ROUNDS = 10
CONCURRENCY = 64
#: what 10,000 operations may add to the heap between an early round and the last one
#: (the client remembers the predictions it created for recovery: ~100 bytes each)
MEMORY_SLACK = 2 * 1024 * 1024


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """``python -m replicate_async.testing`` on a free port; its base URL."""
    proc = subprocess.Popen(
        # Plain HTTP: this test counts connections and memory, not TLS.
        [
            sys.executable,
            "-m",
            "replicate_async.testing",
            "--port",
            "0",
            "--token",
            TOKEN,
            "--no-tls",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, f"emulator did not start: {line!r}"
        yield line.split("listening on ")[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle(check: Callable[[], bool], within: float = 10.0) -> bool:
    """Whether ``check()`` comes true within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def operations(client: AsyncReplicate, pid: str, image: FileOutput, tmp: Path) -> list[Any]:
    """One of each kind of operation, by weight: reads most, then runs, streams, files."""

    async def get(i: int) -> None:
        assert (await client.predictions.get(pid)).id == pid

    async def page(i: int) -> None:
        pager = client.predictions.list()
        assert (await pager.next_page()) is not None
        await pager.aclose()

    async def run(i: int) -> None:
        assert await client.run("emulator/echo", input={"text": f"n{i}"}) == f"n{i}"

    async def cancel(i: int) -> None:
        made = await client.predictions.create(model="emulator/sleep", input={"seconds": 30})
        await client.predictions.cancel(made)

    async def upload(i: int) -> None:
        await client.files.create(b"x" * 1000)

    async def download(i: int) -> None:
        assert len(await image.read()) == 65536

    async def save(i: int) -> None:
        saved = await image.save(tmp / f"{i}.bin")
        saved.path.unlink()

    async def stream(i: int) -> None:
        events = [e async for e in client.stream("emulator/stream", input={"tokens": 3})]
        assert len(events) == 3

    return (
        [get] * 8
        + [page] * 2
        + [run] * 3
        + [cancel, upload]
        + [download] * 2
        + [save]
        + [stream] * 2
    )


def abandonments(client: AsyncReplicate, image: FileOutput) -> list[Any]:
    async def broken_stream(i: int) -> None:
        async for _ in client.stream("emulator/stream", input={"tokens": 50, "delay": 0.01}):
            break

    async def cancelled_download(i: int) -> None:
        task = asyncio.ensure_future(image.read())
        await asyncio.sleep(0.002)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def timed_out_stream(i: int) -> None:
        async def listen() -> None:
            async for _ in client.stream("emulator/stream", input={"tokens": 50, "delay": 0.02}):
                pass

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(listen(), 0.05)

    return [broken_stream, cancelled_download, timed_out_stream]


async def in_rounds(
    kinds: list[Any], total: int, rounds: int, after: Callable[[int], Awaitable[None]]
) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            await kinds[i % len(kinds)](i)

    per_round = total // rounds
    for r in range(rounds):
        await asyncio.gather(*(one(r * per_round + i) for i in range(per_round)))
        await after(r)


@pytest.mark.timeout(600)
async def test_ten_thousand_operations_and_a_thousand_abandoned_leave_nothing(
    tmp_path: Path,
) -> None:
    with emulator_process() as url:
        fds_before = open_fds()
        tasks_before = len(asyncio.all_tasks())
        limits = RateLimits.unlimited()
        async with AsyncReplicate(
            api_token=TOKEN, base_url=url, polling=FAST_POLLING, rate_limits=limits
        ) as client:
            (image,) = await client.run("emulator/images", input={"size_bytes": 65536})
            made = await client.predictions.create(model="emulator/echo", input={"text": "x"})
            memory: list[int] = []

            def claims_bytes() -> int:
                # The ids kept for create recovery: bounded by time, not count (those of
                # the last seconds, or since the oldest create still in the air, say a
                # create held open for a minute), so counted apart: a dict that doubles
                # mid-run is not a leak.
                ids = client._creator.claims._ids
                return sys.getsizeof(ids) + sum(sys.getsizeof(k) + 24 for k in ids)

            async def measure(r: int) -> None:
                if r == 2:
                    tracemalloc.start()
                if r >= 3:
                    memory.append(tracemalloc.get_traced_memory()[0] - claims_bytes())

            try:
                kinds = operations(client, made.id, image, tmp_path)
                await in_rounds(kinds, OPERATIONS, ROUNDS, measure)
            finally:
                tracemalloc.stop()
            await in_rounds(abandonments(client, image), ABANDONED, 4, lambda r: asyncio.sleep(0))
            # The abandoned streams' predictions are being cancelled in the background.
            await client._janitor.aclose()
            in_use, _ = client._session.transport.connector_stats()
            assert in_use == 0, f"{in_use} connections still in use"
            # Nothing of the client's own is still running (the poller stops when idle).
            assert await settle(lambda: len(asyncio.all_tasks()) <= tasks_before), [
                t.get_coro() for t in asyncio.all_tasks()
            ]
        assert await settle(lambda: open_fds() <= fds_before), (
            f"{open_fds() - fds_before} file descriptors more than before"
        )
        assert list(tmp_path.iterdir()) == []  # no temporary file left by a cancelled save
        # A leak grows the heap every round; a cache or a dict doubling once (seen, ~2 MB,
        # in one round of seven, only in the full suite) is a step. The typical round's
        # growth, over all rounds, must stay under the slack; any growth at all under
        # four times it.
        steps = [after - before for before, after in itertools.pairwise(memory)]
        trend = statistics.median(steps) * len(steps)
        assert trend < MEMORY_SLACK, (
            f"memory grows {trend / 1e6:.1f} MB over {OPERATIONS * 7 // 10:,} operations: {memory}"
        )
        growth = memory[-1] - memory[0]
        assert growth < 4 * MEMORY_SLACK, f"memory grew {growth / 1e6:.1f} MB: {memory}"
