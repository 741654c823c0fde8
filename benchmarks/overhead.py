"""Client CPU per create + get round trip: replicate_async vs raw aiohttp vs the official client.

The emulator runs in another process, so ``time.process_time()`` here counts the client
side only: building requests, the HTTP stack, JSON decoding, payload objects. Each client
does the same sequential round trips (create ``emulator/echo`` by model, then get it) in
interleaved rounds; the table shows medians over rounds and the ratios.

    python -m benchmarks.overhead [--n 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp

from replicate_async import AsyncReplicate, RateLimits

from ._emulator import RunningEmulator, emulator_process

INPUT = {"text": "hello, benchmark"}
RoundTrip = Callable[[], Awaitable[None]]


async def raw_aiohttp(emu: RunningEmulator, n: int) -> tuple[float, float]:
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


async def ours(emu: RunningEmulator, n: int) -> tuple[float, float]:
    """replicate_async, limiter included (set high so it never waits)."""
    async with AsyncReplicate(
        api_token=emu.token, base_url=emu.url, rate_limits=RateLimits.unlimited()
    ) as client:

        async def once() -> None:
            p = await client.predictions.create(model="emulator/echo", input=INPUT)
            await client.predictions.get(p.id)

        return await _measure(once, n)


async def official(emu: RunningEmulator, n: int) -> tuple[float, float]:
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


async def _measure(once: RoundTrip, n: int) -> tuple[float, float]:
    for _ in range(min(30, n)):  # warm up: connections, caches, lazy imports
        await once()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await once()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / n * 1e6, wall / n * 1e6


CLIENTS = {
    "raw aiohttp (floor)": raw_aiohttp,
    "replicate_async": ours,
    "replicate (official)": official,
}


async def main(n: int, rounds: int) -> None:
    with emulator_process() as emu:
        cpu: dict[str, list[float]] = {name: [] for name in CLIENTS}
        wall: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for r in range(rounds):
            for name, bench in CLIENTS.items():
                c, w = await bench(emu, n)
                cpu[name].append(c)
                wall[name].append(w)
            print(f"round {r + 1}/{rounds} done", flush=True)
    floor = statistics.median(cpu["raw aiohttp (floor)"])
    ours_cpu = statistics.median(cpu["replicate_async"])
    print(f"\n{n} create+get round trips per client per round, {rounds} rounds, medians:\n")
    columns = ["client", "CPU µs / round trip", "wall µs / round trip", "CPU vs floor"]
    print("| " + " | ".join([*columns, "CPU vs replicate_async"]) + " |")
    print("|---|---:|---:|---:|---:|")
    for name in CLIENTS:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(f"| {name} | {c:,.0f} | {w:,.0f} | {c / floor:.2f}x | {c / ours_cpu:.2f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="round trips per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
