"""Models as functions: what checking an input costs, and what a call asks of the server.

Part 1, validation per call on sdxl's recorded schema (17 inputs, enums through
``$ref``), in this process, best of several timing rounds:

- replicate_async (``ModelSchema.check``: one compiled fastjsonschema pass for a good
  input; field by field, naming every problem, for a bad one);
- jsonschema's ``Draft7Validator.iter_errors`` on the same schema (the other candidate:
  it also lists every error);
- fastjsonschema's compiled validator alone (the floor: it stops at the first error);
- the official ``replicate`` package checks nothing: a bad input costs it a create and
  a 422, timed here against the emulator.

Part 2, requests per call after the first, against the emulator in its own process
(plain HTTP), ``--calls`` calls each: ``client.use(...)`` for a text model
(``emulator/echo``), a file model (``emulator/images``) and a streaming one
(``emulator/stream``); the official client's ``async_run`` / ``async_stream``; and raw
aiohttp (a create held open with ``Prefer: wait``: the floor). Run::

    python -m benchmarks.use [--calls 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import timeit
from pathlib import Path
from typing import Any

import aiohttp

from ._emulator import RunningEmulator, emulator_process

SDXL = Path(__file__).parents[1] / "tests/fixtures/replicate/recorded/version.get.200.sdxl.json"
GOOD = {
    "prompt": "a corgi",
    "width": 768,
    "height": 768,
    "num_outputs": 2,
    "scheduler": "K_EULER",
    "refine": "no_refiner",
    "guidance_scale": 7.5,
    "apply_watermark": False,
}
BAD = {"promt": "a corgi", "width": "wide", "num_outputs": 9, "scheduler": "FAST"}


def per_call_us(fn: Any, number: int) -> float:
    """Microseconds per call: the best of five rounds (noise only ever adds)."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def validation() -> list[tuple[str, float, float]]:
    import fastjsonschema
    import jsonschema

    from replicate_async.files import looks_like_file
    from replicate_async.protocol.schema import ModelSchema, _strip

    document = json.loads(SDXL.read_text())["openapi_schema"]
    ours = ModelSchema(document, label="stability-ai/sdxl")
    assert ours.check(GOOD, looks_like_file) == []
    assert len(ours.check(BAD, looks_like_file)) == 4
    whole = {**ours.input, "additionalProperties": False}  # type: ignore[dict-item]
    draft7 = jsonschema.Draft7Validator(whole)
    assert not list(draft7.iter_errors(GOOD))
    assert len(list(draft7.iter_errors(BAD))) == 4
    compiled = fastjsonschema.compile(_strip(whole))

    def first_error(value: dict[str, Any]) -> None:
        try:
            compiled(value)
        except fastjsonschema.JsonSchemaValueException:
            pass

    return [
        (
            "replicate_async ModelSchema.check",
            per_call_us(lambda: ours.check(GOOD, looks_like_file), 20_000),
            per_call_us(lambda: ours.check(BAD, looks_like_file), 2_000),
        ),
        (
            "jsonschema Draft7 iter_errors",
            per_call_us(lambda: list(draft7.iter_errors(GOOD)), 2_000),
            per_call_us(lambda: list(draft7.iter_errors(BAD)), 2_000),
        ),
        (
            "fastjsonschema alone (first error only)",
            per_call_us(lambda: first_error(GOOD), 20_000),
            per_call_us(lambda: first_error(BAD), 20_000),
        ),
    ]


def api_requests(emu: RunningEmulator) -> int:
    return sum(r["count"] for r in emu.stats()["requests"])


async def requests_per_call(emu: RunningEmulator, calls: int) -> list[tuple[str, float, float]]:
    import replicate

    from replicate_async import AsyncReplicate

    rows: list[tuple[str, float, float]] = []

    async def measure(name: str, call: Any) -> None:
        await call()  # the first call (a use() handle fetches its schema then)
        before = api_requests(emu)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            await call()
            times.append(time.perf_counter() - started)
        per = (api_requests(emu) - before) / calls
        rows.append((name, per, statistics.median(times) * 1e3))

    async with AsyncReplicate(api_token=emu.token, base_url=emu.url) as client:
        echo = client.use("emulator/echo")
        images = client.use("emulator/images")
        llm = client.use("emulator/stream")

        async def use_stream() -> None:
            assert await (await llm(tokens=8)).text()

        await measure("replicate_async use(): text", lambda: echo(text="hello"))
        await measure("replicate_async use(): files", lambda: images(num_outputs=2))
        await measure("replicate_async use(): iterator (SSE)", use_stream)

        # What a misspelled input costs: nothing leaves the process.
        before = api_requests(emu)
        started = time.perf_counter()
        for _ in range(calls):
            try:
                await echo(txet="hello")
            except Exception:
                pass
        bad_ms = (time.perf_counter() - started) / calls * 1e3
        rows.append(
            (
                "replicate_async use(): misspelled input",
                (api_requests(emu) - before) / calls,
                bad_ms,
            )
        )

    official = replicate.Client(api_token=emu.token, base_url=emu.root_url)

    async def official_stream() -> None:
        async for _ in await official.async_stream("emulator/stream", input={"tokens": 8}):
            pass

    await measure(
        "replicate async_run: text",
        lambda: official.async_run("emulator/echo", input={"text": "hello"}),
    )
    await measure(
        "replicate async_run: files",
        lambda: official.async_run("emulator/images", input={"num_outputs": 2}),
    )
    await measure("replicate async_stream: iterator (SSE)", official_stream)

    async def official_bad() -> None:
        try:
            await official.async_run("emulator/echo", input={"txet": "hello"})
        except Exception:
            pass

    await measure("replicate async_run: misspelled input (422)", official_bad)
    await official._async_client.aclose()

    headers = {"Authorization": f"Bearer {emu.token}", "Prefer": "wait"}
    async with aiohttp.ClientSession() as http:

        async def raw() -> None:
            url = f"{emu.url}/models/emulator/echo/predictions"
            async with http.post(url, json={"input": {"text": "hello"}}, headers=headers) as r:
                assert (await r.json())["status"] == "succeeded"

        await measure("raw aiohttp, Prefer: wait (the floor): text", raw)
    return rows


def main(calls: int) -> None:
    print("validation per call, sdxl's schema (best of 5 rounds):\n")
    print("| validator | good input µs | bad input µs (4 problems) |")
    print("|---|---:|---:|")
    rows = validation()
    for name, good, bad in rows:
        print(f"| {name} | {good:.1f} | {bad:.1f} |")
    ours, draft7 = rows[0], rows[1]
    good, bad = draft7[1] / ours[1], draft7[2] / ours[2]
    print(f"\njsonschema / replicate_async: {good:.1f}x (good input), {bad:.1f}x (bad input)")

    with emulator_process() as emu:
        table = asyncio.run(requests_per_call(emu, calls))
    print(f"\nAPI requests per call after the first ({calls} calls each):\n")
    print("| client | requests / call | median ms / call |")
    print("|---|---:|---:|")
    for name, per, ms in table:
        print(f"| {name} | {per:.2f} | {ms:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=50)
    main(parser.parse_args().calls)
