"""Client CPU per create + get round trip: replicate_async vs raw aiohttp vs the official client.

The emulator runs in another process (on a core of its own), so the CPU time here counts
the client side only: building requests, the HTTP stack, JSON decoding, payload objects.
Each client does the same sequential round trips (create ``emulator/echo`` by model,
then get it) in interleaved rounds, a different client first each round. The table
shows medians over rounds; ratios are taken within each round, then their median.
"user" is the CPU spent in the process itself: the sandbox charges each wake-up from
``epoll`` to system time, the same for every client and very noisy, so user time shows
the libraries' own work most clearly.

    python -m benchmarks.overhead [--n 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp

from replicate_async import AsyncReplicate, RateLimits

from ._emulator import RunningEmulator, emulator_process

INPUT = {"text": "hello, benchmark"}
RoundTrip = Callable[[], Awaitable[None]]
#: (CPU, user CPU, wall) µs per round trip
Sample = tuple[float, float, float]


async def raw_aiohttp(emu: RunningEmulator, n: int) -> Sample:
    """The floor: one aiohttp session, json.dumps / json.loads, nothing else."""
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    create_url = f"{emu.url}/models/emulator/echo/predictions"
    async with aiohttp.ClientSession() as session:

        async def once() -> None:
            body = json.dumps({"input": INPUT}).encode()
            async with session.post(create_url, data=body, headers=headers) as resp:
                created = json.loads(await resp.read())
            async with session.get(f"{emu.url}/predictions/{created['id']}", headers=headers) as r:
                json.loads(await r.read())

        return await _measure(once, n)


async def ours(emu: RunningEmulator, n: int) -> Sample:
    """replicate_async, limiter included (set high so it never waits)."""
    async with AsyncReplicate(
        api_token=emu.token, base_url=emu.url, rate_limits=RateLimits.unlimited()
    ) as client:

        async def once() -> None:
            p = await client.predictions.create(model="emulator/echo", input=INPUT)
            await client.predictions.get(p.id)

        return await _measure(once, n)


async def official(emu: RunningEmulator, n: int) -> Sample:
    """The official ``replicate`` package's async methods."""
    import replicate

    client = replicate.Client(api_token=emu.token, base_url=emu.root_url)
    try:

        async def once() -> None:
            p = await client.predictions.async_create(model="emulator/echo", input=INPUT)
            await client.predictions.async_get(p.id)

        return await _measure(once, n)
    finally:
        await client._async_client.aclose()


def _user() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


async def _measure(once: RoundTrip, n: int) -> Sample:
    for _ in range(min(30, n)):  # warm up: connections, caches, lazy imports
        await once()
    gc.collect()  # the garbage another client left behind is not this one's cost
    cpu0, user0, wall0 = time.process_time(), _user(), time.perf_counter()
    for _ in range(n):
        await once()
    cpu, user = time.process_time() - cpu0, _user() - user0
    wall = time.perf_counter() - wall0
    return cpu / n * 1e6, user / n * 1e6, wall / n * 1e6


CLIENTS = {
    "raw aiohttp (floor)": raw_aiohttp,
    "replicate_async": ours,
    "replicate (official)": official,
}


def _ratio(a: list[float], b: list[float]) -> float:
    """The median of the per-round ratios: drift between rounds cancels out."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


async def main(n: int, rounds: int) -> None:
    samples: dict[str, list[Sample]] = {name: [] for name in CLIENTS}
    names = list(CLIENTS)
    with emulator_process() as emu:
        for r in range(rounds):
            # A different client goes first each round: no one always runs on a cold CPU.
            for name in names[r % len(names) :] + names[: r % len(names)]:
                samples[name].append(await CLIENTS[name](emu, n))
            print(f"round {r + 1}/{rounds} done", flush=True)
    cpu = {name: [s[0] for s in got] for name, got in samples.items()}
    user = {name: [s[1] for s in got] for name, got in samples.items()}
    floor, ours_name = "raw aiohttp (floor)", "replicate_async"
    print(f"\n{n} create+get round trips per client per round, {rounds} rounds, medians:\n")
    print(
        "| client | CPU µs / round trip | user µs | wall µs | CPU vs floor | user vs floor "
        "| CPU vs replicate_async |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in CLIENTS:
        c, u, w = (statistics.median(column) for column in zip(*samples[name], strict=True))
        print(
            f"| {name} | {c:,.0f} | {u:,.0f} | {w:,.0f} | {_ratio(cpu[name], cpu[floor]):.2f}x "
            f"| {_ratio(user[name], user[floor]):.2f}x | {_ratio(cpu[name], cpu[ours_name]):.2f}x |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="round trips per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
