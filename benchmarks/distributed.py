"""Four worker processes, one API token: limits shared through Redis vs each its own.

The emulator (its own process, ``--enforce-limits``) allows ``--rate`` creates a second
after a burst of ``--burst``, as Replicate allows 10 a second after 600 (scaled up to
run in seconds). Four worker processes start together and create ``--n`` predictions
between them (``emulator/echo``, 50 in flight each), every worker with the same limits:

- **shared**: ``RedisRateLimits`` on a redis-server this script starts (loopback, a
  temporary directory);
- **local**: plain ``RateLimits`` in each process, each pacing itself at the full limit
  (what workers do today: the 429 storm the shared limits prevent).

Reported: the aggregate create rate against the limit (the burst taken out: the ideal
wall is (N - burst) / rate), 429s, Redis round trips per request, and the time a shared
acquire adds (the script's round trip, median and p99, when a token is ready). Run::

    python -m benchmarks.distributed [--n 2000] [--rate 100] [--burst 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._emulator import RunningEmulator, emulator_process, scaled_limits

WORKERS = 4
ROOT = Path(__file__).parents[1]


# -- a worker (a child process) ---------------------------------------------------------


async def worker(
    emu: RunningEmulator, mode: str, count: int, rate: int, burst: int, redis: str
) -> None:
    from replicate_async import AsyncReplicate, RateLimits, RedisRateLimits

    limits: Any
    if mode == "shared":
        limits = RedisRateLimits(
            redis, create_per_minute=rate * 60, burst=burst, other_per_minute=3000 * 60
        )
    else:
        limits = RateLimits(create_per_minute=rate * 60, burst=burst, other_per_minute=3000 * 60)
    print("READY", flush=True)
    sys.stdin.readline()
    gate = asyncio.Semaphore(50)
    ok = failed = 0
    started = time.time()
    async with AsyncReplicate(api_token=emu.token, base_url=emu.url, rate_limits=limits) as client:

        async def one(n: int) -> None:
            nonlocal ok, failed
            async with gate:
                try:
                    await client.models.predictions.create("emulator/echo", input={"text": str(n)})
                    ok += 1
                except Exception:
                    failed += 1

        await asyncio.gather(*(one(n) for n in range(count)))
        trips = limits.round_trips if mode == "shared" else {}
    print(
        json.dumps(
            {
                "ok": ok,
                "failed": failed,
                "started": started,
                "ended": time.time(),
                "trips": sum(trips.values()),
            }
        ),
        flush=True,
    )


# -- the parent ------------------------------------------------------------------------------


def run_mode(mode: str, n: int, rate: int, burst: int, redis_url: str) -> dict[str, Any]:
    with emulator_process(*scaled_limits(rate, burst, 3000)) as emu:
        before = emu.stats()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.distributed",
                    "--worker",
                    mode,
                    emu.url,
                    emu.token,
                    str(n // WORKERS),
                    str(rate),
                    str(burst),
                    redis_url,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(WORKERS)
        ]
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "READY":
                raise RuntimeError(f"a worker did not start: {line!r}")
        for proc in procs:  # all at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            results.append(json.loads(out.strip().splitlines()[-1]))
        stats = emu.stats()
    throttled = sum(r["count"] for r in stats["replies"] if r["status"] == 429) - sum(
        r["count"] for r in before["replies"] if r["status"] == 429
    )
    ok = sum(r["ok"] for r in results)
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    ideal = max(0.0, ok - burst) / rate
    return {
        "ok": ok,
        "failed": sum(r["failed"] for r in results),
        "wall": wall,
        "ideal": ideal,
        "throttled": throttled,
        "trips_per_request": sum(r["trips"] for r in results) / max(1, ok),
    }


async def acquire_cost(redis_url: str, count: int = 2000) -> dict[str, tuple[float, float]]:
    """What one acquire costs when a token is ready: shared (a Redis round trip) vs local."""
    from replicate_async import RateLimiter, RateLimits, RedisRateLimits

    huge = 1e9
    shared = RedisRateLimits(redis_url, create_per_minute=huge, burst=huge, key_prefix="cost")
    shared.bind("r8_cost")
    local = RateLimiter(RateLimits(create_per_minute=huge, burst=huge))
    out = {}
    for name, lane in (("shared", shared.create), ("local", local.create)):
        await lane.acquire()  # connect first
        times = []
        for _ in range(count):
            began = time.perf_counter()
            await lane.acquire()
            times.append(time.perf_counter() - began)
        times.sort()
        out[name] = (statistics.median(times) * 1e6, times[int(count * 0.99)] * 1e6)
    await shared.aclose()
    return out


def main(n: int, rate: int, burst: int, rounds: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.redis_server import RedisServer, available

    if not available():
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer().start()
    rows = []
    try:
        cost = asyncio.run(acquire_cost(server.url))
        for round_ in range(rounds):
            for mode in ("shared", "local"):
                print(f"round {round_ + 1}: {mode} ...", flush=True)
                rows.append((mode, run_mode(mode, n, rate, burst, server.url)))
    finally:
        server.close()
    print(
        f"\n{WORKERS} workers, {n} creates between them; the server allows {rate}/s after a "
        f"burst of {burst}\n"
    )
    print(
        "| limits | ok | failed | wall s | ideal s | rate vs the limit | 429s "
        "| Redis round trips / request |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode, r in rows:
        share = r["ideal"] / r["wall"] if r["wall"] else 0.0
        trips = f"{r['trips_per_request']:.3f}" if mode == "shared" else "-"
        print(
            f"| {mode} | {r['ok']:,} | {r['failed']:,} | {r['wall']:.1f} | {r['ideal']:.1f} | "
            f"{share:.1%} | {r['throttled']:,} | {trips} |"
        )
    print("\nan acquire with a token ready (2,000 in a row), median / p99:")
    for name, (p50, p99) in cost.items():
        print(f"  {name}: {p50:.0f} / {p99:.0f} us")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        mode, url, token, count, rate, burst, redis = sys.argv[2:9]
        asyncio.run(
            worker(RunningEmulator(url, token), mode, int(count), int(rate), int(burst), redis)
        )
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
        parser.add_argument("--n", type=int, default=2000, help="creates, all workers together")
        parser.add_argument("--rate", type=int, default=100, help="creates a second allowed")
        parser.add_argument("--burst", type=int, default=200, help="the server's burst")
        parser.add_argument("--rounds", type=int, default=1)
        args = parser.parse_args()
        main(args.n, args.rate, args.burst, args.rounds)
