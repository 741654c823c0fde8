"""Bulk fan-out at the create limit: replicate_async vs the official client vs naive aiohttp.

Limits are scaled 10x: the emulator (in its own process, with ``--enforce-limits``)
allows 100 creates a second after a burst of 600, as Replicate allows 10 a second after
600, and 500 other requests a second. The model takes 1 to 3 seconds (``emulator/sleep``,
seeded). Each client runs in a process of its own (for its peak RSS) against a fresh
emulator (full buckets):

- replicate_async: ``run_many(concurrency=2000)`` (default settings otherwise: held
  creates while connections are free, the poller's sweeps);
- replicate_async + journal: the same with ``journal=`` a file in a temporary directory
  (each create's line written before it is sent, each id's before it is waited on):
  what a restartable job costs, and the latency of a journal write (median, p99);
- replicate_async + webhooks: the same with ``webhook=Receiver()`` (a receiver in the
  client's process, the emulator delivering to it): completion with no polls;
- the official ``replicate`` package: ``asyncio.gather`` of ``async_run`` under a
  semaphore of 100 (its default ``Prefer: wait`` and a poll every 0.5 s);
- naive aiohttp: create, then ``GET`` every 0.5 s, under a semaphore of 100.

The ideal wall time counts the server's burst: N creates need (N - 600) / 100 s, and the
last prediction then runs up to 3 s. Run::

    python -m benchmarks.fanout [--n 10000] [--peers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
import sys
import time
from typing import Any

import aiohttp

from ._emulator import RunningEmulator, emulator_process, scaled_limits

RATE, BURST, OTHER = 100, 600, 500  # creates a second, their burst, other requests a second
RUN_TIMES = (1.0, 3.0)
SERVER = scaled_limits(RATE, BURST, OTHER)
MODEL = "emulator/sleep"


def inputs(n: int) -> list[dict[str, float]]:
    rng = random.Random(2026)
    return [{"seconds": round(rng.uniform(*RUN_TIMES), 3)} for _ in range(n)]


def ideal(n: int) -> float:
    return max(0, n - BURST) / RATE + RUN_TIMES[1]


# -- the clients (each runs in a child process) ------------------------------------------


#: what a child measured besides its counts (creates/s, journal write latencies)
EXTRA: dict[str, Any] = {}


async def ours(emu: RunningEmulator, n: int, mode: str = "") -> tuple[int, int]:
    import tempfile

    from replicate_async import AsyncReplicate, Progress, RateLimits, Receiver
    from replicate_async.journal import Journal

    limits = RateLimits(
        create_per_minute=RATE * 60, other_per_minute=OTHER * 60, get_per_minute=OTHER * 60
    )
    ok = failed = 0
    started = time.monotonic()
    created_by: list[float] = []

    def progress(p: Progress) -> None:
        # The moment the last create came back: creates per second over the run.
        if not created_by and p.queued == 0 and p.creating == 0:
            created_by.append(time.monotonic() - started)

    options: dict[str, Any] = {}
    latencies: list[float] = []  # each record as the job awaits it (loop hand-offs too)
    writes: list[float] = []  # each write itself, in the writer thread
    with tempfile.TemporaryDirectory() as tmp:
        if mode == "journal":
            options["journal"] = f"{tmp}/job.jsonl"
            real = Journal._append

            async def timed(self: Journal, record: dict[str, Any]) -> None:
                began = time.perf_counter()
                await real(self, record)
                latencies.append(time.perf_counter() - began)

            Journal._append = timed  # type: ignore[method-assign]
            real_write = Journal._write

            def timed_write(self: Journal, data: bytes) -> None:
                began = time.perf_counter()
                real_write(self, data)
                writes.append(time.perf_counter() - began)

            Journal._write = timed_write  # type: ignore[method-assign]
        receiver = Receiver() if mode == "webhooks" else None
        if receiver is not None:
            await receiver.start()
            options["webhook"] = receiver
        try:
            async with AsyncReplicate(
                api_token=emu.token, base_url=emu.url, rate_limits=limits
            ) as c:
                async for result in c.run_many(
                    MODEL, inputs(n), concurrency=2000, progress=progress, **options
                ):
                    ok += result.ok
                    failed += not result.ok
        finally:
            if receiver is not None:
                await receiver.aclose()
    if created_by:
        EXTRA["creates_per_s"] = n / created_by[0]
    if latencies:
        latencies.sort()
        EXTRA["journal_writes"] = len(latencies)
        EXTRA["journal_p50_us"] = latencies[len(latencies) // 2] * 1e6
        EXTRA["journal_p99_us"] = latencies[int(len(latencies) * 0.99)] * 1e6
        writes.sort()
        EXTRA["write_p50_us"] = writes[len(writes) // 2] * 1e6
        EXTRA["write_p99_us"] = writes[int(len(writes) * 0.99)] * 1e6
    return ok, failed


async def ours_journal(emu: RunningEmulator, n: int) -> tuple[int, int]:
    return await ours(emu, n, "journal")


async def ours_webhooks(emu: RunningEmulator, n: int) -> tuple[int, int]:
    return await ours(emu, n, "webhooks")


async def official(emu: RunningEmulator, n: int) -> tuple[int, int]:
    import replicate

    client = replicate.Client(api_token=emu.token, base_url=emu.root_url)
    gate = asyncio.Semaphore(100)

    async def one(item: dict[str, float]) -> bool:
        async with gate:
            try:
                await client.async_run(MODEL, input=item)
            except Exception:
                return False
            return True

    try:
        results = await asyncio.gather(*(one(item) for item in inputs(n)))
    finally:
        await client._async_client.aclose()
    ok = sum(results)
    return ok, n - ok


async def naive(emu: RunningEmulator, n: int) -> tuple[int, int]:
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    gate = asyncio.Semaphore(100)
    async with aiohttp.ClientSession() as session:

        async def one(item: dict[str, float]) -> bool:
            async with gate:
                body = json.dumps({"input": item})
                url = f"{emu.url}/models/{MODEL}/predictions"
                async with session.post(url, data=body, headers=headers) as resp:
                    if resp.status != 201:
                        return False
                    prediction = json.loads(await resp.read())
                for _ in range(240):  # two minutes at most
                    if prediction["status"] in ("succeeded", "failed", "canceled", "aborted"):
                        return bool(prediction["status"] == "succeeded")
                    await asyncio.sleep(0.5)
                    async with session.get(prediction["urls"]["get"], headers=headers) as resp:
                        if resp.status == 200:
                            prediction = json.loads(await resp.read())
                return False

        results = await asyncio.gather(*(one(item) for item in inputs(n)))
    ok = sum(results)
    return ok, n - ok


CLIENTS = {
    "replicate_async": ours,
    "replicate_async + journal": ours_journal,
    "replicate_async + webhooks": ours_webhooks,
    "replicate (official)": official,
    "naive aiohttp": naive,
}


def child(name: str, url: str, token: str, n: int) -> None:
    """Run one client and print what it measured, as JSON."""
    emu = RunningEmulator(url, token)
    started = time.monotonic()
    ok, failed = asyncio.run(CLIENTS[name](emu, n))
    wall = time.monotonic() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"wall": wall, "ok": ok, "failed": failed, "peak_mb": peak_mb, **EXTRA}))


# -- the parent: a fresh emulator per client, its counts, the table -----------------------


def measure(name: str, n: int) -> dict[str, Any]:
    with emulator_process(*SERVER) as emu:
        before = emu.stats()
        base_rss = _child_baseline()
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.fanout", "--child", name, emu.url, emu.token],
            capture_output=True,
            text=True,
            check=True,
            env=None,
            input=str(n),
            timeout=1200,
        )
        stats = emu.stats()
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])

    def count(stat: dict[str, Any], method: str, route: str) -> int:
        return sum(
            r["count"] for r in stat["requests"] if r["method"] == method and r["route"] == route
        )

    gets = sum(
        count(stats, "GET", route) - count(before, "GET", route)
        for route in ("/predictions/{id}", "/predictions")
    )
    creates = count(stats, "POST", "/models/{owner}/{name}/predictions")
    throttled = sum(r["count"] for r in stats["replies"] if r["status"] == 429)
    result.update(
        n=n,
        gets=gets,
        creates=creates,
        throttled=throttled,
        ideal=ideal(n),
        baseline_mb=base_rss,
    )
    return result


def _child_baseline() -> float:
    """Peak RSS of a child that imports everything and does nothing (the floor)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource, aiohttp, replicate, replicate_async;"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip())


def main(n: int, peers: int, only: list[str] | None) -> None:
    rows = []
    for name in CLIENTS:
        if only and name not in only:
            continue
        size = n if name.startswith("replicate_async") else peers
        print(f"running {name} with {size} predictions...", flush=True)
        rows.append((name, measure(name, size)))
    print(
        f"\nlimits x10: {RATE} creates/s after a burst of {BURST}, {OTHER} other requests/s; "
        f"model {RUN_TIMES[0]:g}-{RUN_TIMES[1]:g} s\n"
    )
    print(
        "| client | predictions | ok | failed | wall s | ideal s | vs ideal | creates/s "
        "| creates sent | 429s | GETs / completed | peak RSS MB (imports alone) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        per = r["gets"] / r["ok"] if r["ok"] else float("nan")
        rate = f"{r['creates_per_s']:.1f}" if "creates_per_s" in r else "-"
        print(
            f"| {name} | {r['n']:,} | {r['ok']:,} | {r['failed']:,} | {r['wall']:.1f} | "
            f"{r['ideal']:.1f} | {r['wall'] / r['ideal']:.3f}x | {rate} | {r['creates']:,} | "
            f"{r['throttled']:,} | {per:.3f} | {r['peak_mb']:.0f} ({r['baseline_mb']:.0f}) |"
        )
    for name, r in rows:
        if "journal_writes" in r:
            print(
                f"\n{name}: {r['journal_writes']:,} journal records; each awaited by the job "
                f"median {r['journal_p50_us']:.0f} us, p99 {r['journal_p99_us']:.0f} us; "
                f"the write itself median {r['write_p50_us']:.0f} us, "
                f"p99 {r['write_p99_us']:.0f} us"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.stdin.read()))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--n", type=int, default=10_000, help="predictions for ours")
        parser.add_argument("--peers", type=int, default=1_000, help="for the others")
        parser.add_argument(
            "--only", action="append", choices=list(CLIENTS), help="run only these (repeat)"
        )
        args = parser.parse_args()
        main(args.n, args.peers, args.only)
