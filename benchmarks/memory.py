"""Memory over length: run_many over a million inputs, watch() over a long prediction.

Each client runs in a process of its own against an emulator in another process (its
limits off: this measures memory, not pacing). Peak RSS (``ru_maxrss``) is sampled as
the work goes; reported is its growth from an early mark (after the first 2% of the
inputs, when pools and caches are warm) to the end: what the length costs.

- run_many: ``client.run_many("emulator/echo", inputs)`` over N unique inputs pulled
  from a generator; the floor is raw aiohttp with 50 workers pulling from the same
  generator (create with ``Prefer: wait``); the official package has no fan-out, so
  it runs ``asyncio.gather`` of ``async_run`` under a semaphore of 50, as its docs
  suggest, over fewer inputs (``--peers``: it is slow);
- watch(): ``client.predictions.watch()`` over one prediction of ``emulator/sleep``
  polled every 10 ms (thousands of polls) against a raw aiohttp poll loop.

    python -m benchmarks.memory [--n 1000000] [--peers 100000] [--watch 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from ._emulator import emulator_process

MODEL = "emulator/echo"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def inputs(n: int) -> Iterator[dict[str, str]]:
    return ({"text": f"m-{i}"} for i in range(n))


class Marks:
    """Peak RSS at the early mark and at the end, and how many results came."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.done = 0
        self.early: float | None = None
        self.started = time.perf_counter()

    def tick(self) -> None:
        self.done += 1
        if self.early is None and self.done >= max(1, self.n // 50):
            self.early = _rss_mb()

    def report(self, **extra: Any) -> None:
        assert self.early is not None
        wall = time.perf_counter() - self.started
        print(
            json.dumps(
                {
                    "n": self.done,
                    "wall": wall,
                    "growth_mb": _rss_mb() - self.early,
                    "peak_mb": _rss_mb(),
                    **extra,
                }
            )
        )


# -- run_many --------------------------------------------------------------------------------


async def fan_ours(url: str, token: str, n: int) -> None:
    from replicate_async import AsyncReplicate, RateLimits

    marks = Marks(n)
    # Unpaced, like the others: this measures memory, not the create limit.
    limits = RateLimits.unlimited()
    async with AsyncReplicate(api_token=token, base_url=url, rate_limits=limits) as client:
        async for result in client.run_many(MODEL, inputs(n), concurrency=50):
            if not result.ok:
                raise RuntimeError(f"input {result.index} failed: {result.error}")
            marks.tick()
        marks.report(claims=len(client._creator.claims))


async def fan_floor(url: str, token: str, n: int) -> None:
    marks = Marks(n)
    source = inputs(n)
    headers = {"Authorization": f"Bearer {token}", "Prefer": "wait"}
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for item in source:
                body = {"input": item}
                async with session.post(
                    f"{url}/models/{MODEL}/predictions", json=body, headers=headers
                ) as resp:
                    prediction = await resp.json()
                if prediction["output"] != item["text"]:
                    raise RuntimeError(f"wrong output for {item}")
                marks.tick()

        await asyncio.gather(*(worker() for _ in range(50)))
    marks.report()


async def fan_official(url: str, token: str, n: int) -> None:
    import replicate

    marks = Marks(n)
    client = replicate.Client(api_token=token, base_url=url.removesuffix("/v1"))
    gate = asyncio.Semaphore(50)

    async def one(item: dict[str, str]) -> None:
        async with gate:
            await client.async_run(MODEL, input=item)
            marks.tick()

    try:
        await asyncio.gather(*(one(item) for item in inputs(n)))
    finally:
        await client._async_client.aclose()
    marks.report()


# -- watch -------------------------------------------------------------------------------------


def _report_growth(n: int, started: float, base: float) -> None:
    wall = time.perf_counter() - started
    print(json.dumps({"n": n, "wall": wall, "growth_mb": _rss_mb() - base, "peak_mb": _rss_mb()}))


async def watch_ours(url: str, token: str, seconds: int) -> None:
    from replicate_async import AsyncReplicate, PollPolicy, RateLimits

    fast = PollPolicy(first=0.01, factor=1.01, cap=0.01)
    limits = RateLimits.unlimited()
    async with AsyncReplicate(
        api_token=token, base_url=url, polling=fast, rate_limits=limits
    ) as client:
        prediction = await client.predictions.create(
            model="emulator/sleep", input={"seconds": seconds}
        )
        base = _rss_mb()
        started = time.perf_counter()
        snapshots = 0
        async for _ in client.predictions.watch(prediction):
            snapshots += 1
        _report_growth(snapshots, started, base)


async def watch_floor(url: str, token: str, seconds: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/models/emulator/sleep/predictions",
            json={"input": {"seconds": seconds}},
            headers=headers,
        ) as resp:
            prediction = await resp.json()
        base = _rss_mb()
        started = time.perf_counter()
        polls = 0
        while prediction["status"] not in ("succeeded", "failed", "canceled"):
            await asyncio.sleep(0.01)
            async with session.get(prediction["urls"]["get"], headers=headers) as resp:
                prediction = await resp.json()
            polls += 1
        _report_growth(polls, started, base)


CHILDREN: dict[str, Any] = {
    "fan:ours": fan_ours,
    "fan:floor": fan_floor,
    "fan:official": fan_official,
    "watch:ours": watch_ours,
    "watch:floor": watch_floor,
}


def run_child(kind: str, url: str, token: str, n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", kind, url, token, str(n)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(n: int, peers: int, watch: int) -> None:
    rows: list[tuple[str, dict[str, float]]] = []
    for kind, label, size in [
        ("fan:ours", "replicate_async run_many", n),
        ("fan:floor", "raw aiohttp, 50 workers (floor)", n),
        ("fan:official", "replicate (official) gather + async_run", peers),
    ]:
        with emulator_process() as emu:
            print(f"{label}: {size:,} inputs...", flush=True)
            rows.append((label, run_child(kind, emu.url, emu.token, size)))
    print(
        "\n| fan-out | inputs | per second | RSS growth after the first 2% (MB) | peak RSS (MB) |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, r in rows:
        print(
            f"| {label} | {r['n']:,.0f} | {r['n'] / r['wall']:,.0f} | {r['growth_mb']:.1f} "
            f"| {r['peak_mb']:.0f} |"
        )
    if "claims" in rows[0][1]:
        print(f"\nclaims held by ours at the end: {rows[0][1]['claims']:,.0f}")
    watched = []
    for kind, label in [
        ("watch:ours", "replicate_async predictions.watch()"),
        ("watch:floor", "raw aiohttp poll loop (floor)"),
    ]:
        with emulator_process() as emu:
            result = run_child(kind, emu.url, emu.token, watch)
            result["polls"] = _polls(emu.stats())
            watched.append((label, result))
    print(f"\n| watch over {watch} s, polled every 10 ms | polls | RSS growth (MB) |")
    print("|---|---:|---:|")
    for label, r in watched:
        print(f"| {label} | {r['polls']:,.0f} | {r['growth_mb']:.1f} |")


def _polls(stats: dict[str, Any]) -> int:
    return sum(
        r["count"]
        for r in stats.get("requests", [])
        if r["method"] == "GET" and r["route"] == "/predictions/{id}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--peers", type=int, default=100_000)
    parser.add_argument("--watch", type=int, default=60, help="seconds the watched one runs")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, url, token, size = args.child
        asyncio.run(CHILDREN[kind](url, token, int(size)))
    else:
        main(args.n, args.peers, args.watch)
