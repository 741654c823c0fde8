"""Rate limits: accuracy, a 1,000-create burst, and the limiter's own cost.

All limits are scaled 10x (6,000 creates a minute = 100/s) so the runs take seconds.
The emulator runs in its own process and enforces the limits as Replicate does.

(a) accuracy: replicate_async creating predictions flat out for ``--seconds`` against a
    server whose limit equals the client's: achieved rate vs the limit, and 429s.
(b) burst: 1,000 creates at once against a server allowing 100/s after a burst of 600
    (Replicate's: 599 left after a create), by replicate_async, by the official
    ``replicate`` package, and by a naive ``asyncio.gather`` over aiohttp: wall time vs
    the ideal ((N - burst) / rate), 429s the server sent, calls that raised, predictions
    created.
(c) overhead: microseconds per ``acquire()`` with the token ready (1 waiter) and with
    10,000 tasks waiting at once, against the same tasks with no limiter (the floor).

    python -m benchmarks.limits [--seconds 20] [--burst 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp

from replicate_async import AsyncReplicate, RateLimits
from replicate_async.limiter import Lane
from replicate_async.protocol.limits import RateController, TokenBucket

from ._emulator import RunningEmulator, emulator_process

PER_MINUTE = 6000  # 10x Replicate's 600 creates a minute
RATE = PER_MINUTE / 60
SERVER_BURST = 600  # Replicate's create burst (the recorded replies show 599 left)
SERVER = ("--enforce-limits", "--create-per-minute", str(PER_MINUTE))
MODEL = "emulator/echo"


def _limited_server(burst: float | None = None) -> Any:
    extra = ("--create-burst", str(burst)) if burst else ()
    return emulator_process(*SERVER, *extra)


# -- (a) accuracy ----------------------------------------------------------------------


async def accuracy(seconds: float) -> dict[str, float]:
    """Create flat out for ``seconds``; the achieved rate over the steady part."""
    with _limited_server(burst=RATE) as emu:
        async with AsyncReplicate(
            api_token=emu.token,
            base_url=emu.url,
            rate_limits=RateLimits(create_per_minute=PER_MINUTE, other_per_minute=60000),
        ) as client:
            stamps: list[float] = []
            deadline = time.monotonic() + seconds

            async def worker() -> None:
                while time.monotonic() < deadline:
                    await client.predictions.create(model=MODEL, input={"text": "x"})
                    stamps.append(time.monotonic())

            await asyncio.gather(*(worker() for _ in range(50)))
        throttled = emu.replies_with(429)
    stamps.sort()
    # Skip the first second (the burst) and measure the sustained pace after it.
    start = stamps[0] + 1.0
    steady = [s for s in stamps if s >= start]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    return {
        "achieved": achieved,
        "ratio": achieved / RATE,
        "429s": throttled,
        "creates": len(stamps),
    }


# -- (b) burst ---------------------------------------------------------------------------


async def burst_ours(emu: RunningEmulator, n: int, reserve: float = 0.05) -> tuple[int, int]:
    async with AsyncReplicate(
        api_token=emu.token,
        base_url=emu.url,
        rate_limits=RateLimits(
            create_per_minute=PER_MINUTE, other_per_minute=60000, reserve=reserve
        ),
    ) as client:
        results = await asyncio.gather(
            *(client.predictions.create(model=MODEL, input={"text": str(i)}) for i in range(n)),
            return_exceptions=True,
        )
    raised = sum(isinstance(r, BaseException) for r in results)
    return n - raised, raised


async def burst_official(emu: RunningEmulator, n: int) -> tuple[int, int]:
    import replicate

    client = replicate.Client(api_token=emu.token, base_url=emu.root_url)
    try:
        results = await asyncio.gather(
            *(
                client.predictions.async_create(model=MODEL, input={"text": str(i)})
                for i in range(n)
            ),
            return_exceptions=True,
        )
    finally:
        await client._async_client.aclose()
    raised = sum(isinstance(r, BaseException) for r in results)
    return n - raised, raised


async def burst_naive(emu: RunningEmulator, n: int) -> tuple[int, int]:
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    url = f"{emu.url}/models/{MODEL}/predictions"
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> bool:
            body = json.dumps({"input": {"text": str(i)}})
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status == 201

        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    ok = sum(r is True for r in results)
    return ok, n - ok


async def burst_ours_all(emu: RunningEmulator, n: int) -> tuple[int, int]:
    """Ours, leaving no reserve for other users of the token."""
    return await burst_ours(emu, n, reserve=0.0)


BURSTERS = {
    "replicate_async": burst_ours,
    "replicate_async, reserve=0": burst_ours_all,
    "replicate (official)": burst_official,
    "naive gather (aiohttp)": burst_naive,
}


async def burst(n: int) -> dict[str, dict[str, float]]:
    """Each client bursts ``n`` creates at a fresh server (full buckets)."""
    out: dict[str, dict[str, float]] = {}
    for name, run in BURSTERS.items():
        with _limited_server(burst=SERVER_BURST) as emu:
            started = time.monotonic()
            ok, raised = await run(emu, n)
            wall = time.monotonic() - started
            stats = emu.stats()
        throttled = sum(r["count"] for r in stats["replies"] if r["status"] == 429)
        out[name] = {
            "wall": wall,
            "429s": throttled,
            "raised": raised,
            "created": stats["predictions"],
            "ok": ok,
        }
    return out


# -- (c) overhead ------------------------------------------------------------------------


def _lane(rate: float, capacity: float) -> Lane:
    now = time.monotonic()
    bucket = TokenBucket(rate, capacity, now=now)
    return Lane(
        RateController(bucket, max_capacity=capacity, now=now), time.monotonic, asyncio.sleep
    )


async def overhead(n: int) -> dict[str, float]:
    """µs per acquire, ready and with ``n`` concurrent waiters, minus the task floor."""
    loops = 200_000
    bucket = _lane(rate=1e12, capacity=1e12)
    t0 = time.perf_counter()
    for _ in range(loops):
        await bucket.acquire()
    ready = (time.perf_counter() - t0) / loops * 1e6

    async def bare() -> None:
        await asyncio.sleep(0)

    # capacity 1: every waiter but the first queues on the lock and is woken in turn
    queued_bucket = _lane(rate=1e12, capacity=1)

    async def limited() -> None:
        await queued_bucket.acquire()
        await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*(bare() for _ in range(n)))
    floor = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(n)))
    queued = (time.perf_counter() - t0) / n * 1e6
    return {"ready": ready, "floor": floor, "queued": queued, "queued_extra": queued - floor}


# -- report ------------------------------------------------------------------------------


async def main(seconds: float, n: int, rounds: int) -> None:
    print(f"(a) accuracy: {seconds:g} s flat out, client and server both at {RATE:g}/s")
    acc = [await accuracy(seconds) for _ in range(rounds)]
    print("| round | creates | sustained rate /s | of the limit | 429s |")
    print("|---|---:|---:|---:|---:|")
    for i, a in enumerate(acc, 1):
        print(
            f"| {i} | {a['creates']:.0f} | {a['achieved']:.2f} | {a['ratio']:.1%} | "
            f"{a['429s']:.0f} |"
        )
    print(f"median: {statistics.median(a['ratio'] for a in acc):.1%} of the limit\n")

    ideal = max(0, n - SERVER_BURST) / RATE
    print(
        f"(b) burst of {n} creates, server at {RATE:g}/s after a burst of {SERVER_BURST}; "
        f"ideal {ideal:.1f} s"
    )
    runs = [await burst(n) for _ in range(rounds)]
    print(
        "| client | wall s | vs ideal | 429s sent by the server | calls that raised | "
        "predictions created |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in BURSTERS:
        wall = statistics.median(r[name]["wall"] for r in runs)
        throttled = statistics.median(r[name]["429s"] for r in runs)
        raised = statistics.median(r[name]["raised"] for r in runs)
        created = statistics.median(r[name]["created"] for r in runs)
        print(
            f"| {name} | {wall:.2f} | {wall / ideal:.2f}x | {throttled:.0f} | {raised:.0f} "
            f"| {created:.0f} |"
        )

    print("\n(c) limiter overhead per request, medians")
    costs = [await overhead(10_000) for _ in range(max(3, rounds))]
    ready = statistics.median(c["ready"] for c in costs)
    floor = statistics.median(c["floor"] for c in costs)
    queued = statistics.median(c["queued"] for c in costs)
    print("| case | µs per request |")
    print("|---|---:|")
    print(f"| 1 waiter, token ready: acquire() | {ready:.2f} |")
    print(f"| 10,000 tasks, no limiter (floor) | {floor:.2f} |")
    print(f"| 10,000 tasks queued on one bucket | {queued:.2f} |")
    print(f"| limiter's share with 10,000 waiters | {queued - floor:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.burst, args.rounds))
