"""Soak under chaos: 20,000 predictions with 5% of all requests faulted, nothing lost.

The emulator (its own process) runs with ``--chaos 0.05``: one request in twenty, on
every host, meets a random fault (a 429, a 500, a 502 proxy page, a 503, a reply that
is not JSON, a delay, a reset after the work was done; on the stream and file hosts
5xx, delays, resets and bodies cut short), and with its limits enforced and scaled
20x (200 creates a second after a burst of 600, 1,000 other requests a second).

Each client runs in a process of its own against a fresh emulator with the same seed:

- replicate_async: ``run_many`` of ``emulator/echo`` over N unique inputs, then (its
  own extra rounds) downloads of 2,000 file outputs and 500 streams through the chaos;
- the official ``replicate`` package: ``async_run`` under a semaphore of 100;
- naive aiohttp: create, then poll every 0.5 s, under a semaphore of 100.

Counted from the emulator's own record of what it made (``/_emulator/predictions``):
**duplicates** (predictions beyond one per input: must be 0), **lost** (inputs the
server ran to success whose result the client did not hand back, or inputs with no
result at all: must be 0), and from the client: completed, failed with an error (by
type), wrong output, peak RSS, connections still in use at the end. Run::

    python -m benchmarks.soak [--n 20000] [--peers 2000] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import subprocess
import sys
import time
import urllib.request
from typing import Any

import aiohttp

from ._emulator import RunningEmulator, emulator_process, scaled_limits

RATE, BURST, OTHER = 200, 600, 1000  # creates a second, their burst, other requests a second
CHAOS = 0.05
MODEL = "emulator/echo"
DOWNLOADS, FILE_SIZE, STREAMS, TOKENS = 2000, 4096, 500, 5


def server(seed: int) -> tuple[str, ...]:
    return (
        *scaled_limits(RATE, BURST, OTHER),
        "--chaos",
        str(CHAOS),
        "--chaos-seed",
        str(seed),
    )


def inputs(n: int) -> list[dict[str, str]]:
    return [{"text": f"soak-{i}"} for i in range(n)]


def _kind(error: BaseException) -> str:
    return type(error).__name__


# -- the clients (each in a child process); each returns its per-input verdicts ----------


async def ours(emu: RunningEmulator, n: int) -> dict[str, Any]:
    from replicate_async import AsyncReplicate, RateLimits
    from replicate_async.testing._outputs import pattern_chunks

    limits = RateLimits(
        create_per_minute=RATE * 60, other_per_minute=OTHER * 60, get_per_minute=OTHER * 60
    )
    verdicts: dict[int, str] = {}
    extra: dict[str, Any] = {}
    async with AsyncReplicate(api_token=emu.token, base_url=emu.url, rate_limits=limits) as c:
        async for result in c.run_many(MODEL, inputs(n), concurrency=2000):
            if result.ok:
                verdicts[result.index] = "ok" if result.output == result.input["text"] else "wrong"
            else:
                verdicts[result.index] = "error " + _kind(result.error or Exception())
        extra["in_use_after_predictions"] = c._session.transport.connector_stats()[0]

        # Files through the chaos: every one whole, or an error; never short.
        expected = b"".join(pattern_chunks(0, FILE_SIZE))
        downloads: collections.Counter[str] = collections.Counter()
        (image,) = await c.run("emulator/images", input={"size_bytes": FILE_SIZE})
        gate = asyncio.Semaphore(100)

        async def fetch() -> None:
            async with gate:
                try:
                    data = await image.read()
                except Exception as error:
                    downloads["error " + _kind(error)] += 1
                else:
                    downloads["ok" if data == expected else "short or wrong"] += 1

        await asyncio.gather(*(fetch() for _ in range(DOWNLOADS)))
        # Streams through the chaos: the whole text once, or an error.
        streams: collections.Counter[str] = collections.Counter()
        text = "".join(f"token{i} " for i in range(TOKENS))

        async def listen() -> None:
            async with gate:
                try:
                    got = "".join(
                        [
                            str(e)
                            async for e in c.stream("emulator/stream", input={"tokens": TOKENS})
                        ]
                    )
                except Exception as error:
                    streams["error " + _kind(error)] += 1
                else:
                    streams["ok" if got == text else "short or wrong"] += 1

        await asyncio.gather(*(listen() for _ in range(STREAMS)))
        await c._janitor.aclose()
        extra["in_use_at_end"] = c._session.transport.connector_stats()[0]
        extra["downloads"] = dict(downloads)
        extra["streams"] = dict(streams)
    return {"verdicts": verdicts, **extra}


async def official(emu: RunningEmulator, n: int) -> dict[str, Any]:
    import replicate

    client = replicate.Client(api_token=emu.token, base_url=emu.root_url)
    gate = asyncio.Semaphore(100)
    verdicts: dict[int, str] = {}

    async def one(index: int, item: dict[str, str]) -> None:
        async with gate:
            try:
                output = await client.async_run(MODEL, input=item)
            except Exception as error:
                verdicts[index] = "error " + _kind(error)
            else:
                verdicts[index] = "ok" if output == item["text"] else "wrong"

    try:
        await asyncio.gather(*(one(i, item) for i, item in enumerate(inputs(n))))
    finally:
        await client._async_client.aclose()
    return {"verdicts": verdicts}


async def naive(emu: RunningEmulator, n: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"}
    gate = asyncio.Semaphore(100)
    verdicts: dict[int, str] = {}
    async with aiohttp.ClientSession() as session:

        async def one(index: int, item: dict[str, str]) -> None:
            async with gate:
                try:
                    verdicts[index] = await attempt(item)
                except Exception as error:
                    verdicts[index] = "error " + _kind(error)

        async def attempt(item: dict[str, str]) -> str:
            url = f"{emu.url}/models/{MODEL}/predictions"
            async with session.post(url, data=json.dumps({"input": item}), headers=headers) as r:
                if r.status != 201:
                    return f"error HTTP {r.status}"
                prediction = json.loads(await r.read())
            for _ in range(240):
                if prediction["status"] in ("succeeded", "failed", "canceled", "aborted"):
                    ok = (
                        prediction["status"] == "succeeded" and prediction["output"] == item["text"]
                    )
                    return "ok" if ok else "wrong"
                await asyncio.sleep(0.5)
                async with session.get(prediction["urls"]["get"], headers=headers) as r:
                    if r.status != 200:
                        return f"error HTTP {r.status}"
                    prediction = json.loads(await r.read())
            return "error timeout"

        await asyncio.gather(*(one(i, item) for i, item in enumerate(inputs(n))))
    return {"verdicts": verdicts}


CLIENTS = {"replicate_async": ours, "replicate (official)": official, "naive aiohttp": naive}


def child(name: str, url: str, token: str, n: int) -> None:
    """Run one client; print what it saw, as JSON."""
    emu = RunningEmulator(url, token)
    started = time.monotonic()
    out = asyncio.run(CLIENTS[name](emu, n))
    out["wall"] = time.monotonic() - started
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(out))


# -- the parent: a fresh emulator per client, the emulator's record, the table -----------


def _jobs(emu: RunningEmulator) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{emu.root_url}/_emulator/predictions", timeout=60) as reply:
        data: list[dict[str, Any]] = json.load(reply)
        return data


def measure(name: str, n: int, seed: int) -> dict[str, Any]:
    with emulator_process(*server(seed)) as emu:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.soak", "--child", name, emu.url, emu.token],
            capture_output=True,
            text=True,
            check=True,
            input=str(n),
            timeout=3600,
        )
        jobs = [j for j in _jobs(emu) if j["model"] == MODEL]
        injected = emu.stats().get("faults_injected", {})
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    verdicts = {int(k): v for k, v in result.pop("verdicts").items()}
    made = collections.Counter(job["input"]["text"] for job in jobs)
    succeeded = {job["input"]["text"] for job in jobs if job["status"] == "succeeded"}
    texts = [item["text"] for item in inputs(n)]
    kinds = collections.Counter(verdicts.values())
    result.update(
        n=n,
        ok=kinds.pop("ok", 0),
        wrong=kinds.pop("wrong", 0),
        errors=dict(kinds),
        duplicates=sum(count - 1 for count in made.values() if count > 1),
        lost=sum(
            1
            for i, text in enumerate(texts)
            if i not in verdicts or (verdicts[i] != "ok" and text in succeeded)
        ),
        injected=sum(injected.values()),
    )
    return result


def main(n: int, peers: int, seed: int) -> None:
    rows = []
    for name in CLIENTS:
        size = n if name == "replicate_async" else peers
        print(f"running {name} with {size:,} predictions...", flush=True)
        rows.append((name, measure(name, size, seed)))
    print(
        f"\nchaos {CHAOS:.0%} of requests on every host (seed {seed}); limits x20: {RATE} "
        f"creates/s after a burst of {BURST}, {OTHER} other requests/s\n"
    )
    print(
        "| client | predictions | completed | failed with an error | wrong | duplicates "
        "| lost | faults injected | wall s | peak RSS MB | connections left |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        failed = sum(r["errors"].values())
        left = r.get("in_use_at_end", "-")
        print(
            f"| {name} | {r['n']:,} | {r['ok']:,} ({r['ok'] / r['n']:.1%}) | {failed:,} | "
            f"{r['wrong']} | {r['duplicates']} | {r['lost']} | {r['injected']:,} | "
            f"{r['wall']:.1f} | {r['peak_mb']:.0f} | {left} |"
        )
    print()
    for name, r in rows:
        top = ", ".join(f"{k.removeprefix('error ')} {v:,}" for k, v in sorted(r["errors"].items()))
        print(f"- {name} errors: {top or 'none'}")
    ours_row = rows[0][1]
    print(f"- replicate_async downloads of a {FILE_SIZE:,}-byte file: {ours_row['downloads']}")
    print(f"- replicate_async streams of {TOKENS} events: {ours_row['streams']}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.stdin.read()))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--n", type=int, default=20_000, help="predictions for ours")
        parser.add_argument("--peers", type=int, default=2_000, help="for the others")
        parser.add_argument("--seed", type=int, default=7, help="the chaos seed")
        args = parser.parse_args()
        main(args.n, args.peers, args.seed)
