"""SSE decoding: our decoder vs the official client's, httpx-sse, and a raw aiohttp read.

Two byte streams: 200,000 small token events (as a language model sends) and 1,000
large events (64 KiB of data each). Every contender decodes the same bytes:

- in memory, fed in 64 KiB chunks: the decoders alone (ours gets bytes; the official
  one and httpx-sse get an ``httpx.Response`` over the same chunks, as in real use);
- end to end, served by a local aiohttp server over a real socket: the floor is a raw
  aiohttp read of the bytes, then the same read with our decoder on top, and the
  official decoder and httpx-sse on an httpx stream.

    python -m benchmarks.sse [--small 200000] [--large 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import httpx
import httpx_sse
import replicate
from aiohttp import web
from replicate.stream import EventSource as OfficialEventSource

from replicate_async.protocol.sse import SSEDecoder

CHUNK = 64 * 1024


def small_stream(n: int) -> bytes:
    return (
        "".join(
            f"event: output\nid: 1690212292:{i}\ndata: tok{i % 100} \n\n" for i in range(n)
        ).encode()
        + b"event: done\ndata: {}\n\n"
    )


def large_stream(n: int) -> bytes:
    block = "x" * (64 * 1024)
    return (
        "".join(f"event: output\nid: 1690212292:{i}\ndata: {block}\n\n" for i in range(n)).encode()
        + b"event: done\ndata: {}\n\n"
    )


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


async def _aiter(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _response(parts: list[bytes]) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_aiter(parts))


# -- in memory ---------------------------------------------------------------------------


async def mem_ours(parts: list[bytes]) -> int:
    decoder = SSEDecoder()
    n = 0
    for part in parts:
        n += len(decoder.feed(part))
    return n


async def mem_official(parts: list[bytes]) -> int:
    client = replicate.Client(api_token="r8_benchmark")
    n = 0
    async for _ in OfficialEventSource(client, _response(parts)):
        n += 1
    return n


async def mem_httpx_sse(parts: list[bytes]) -> int:
    n = 0
    async for _ in httpx_sse.EventSource(_response(parts)).aiter_sse():
        n += 1
    return n


# -- over a socket -----------------------------------------------------------------------


async def serve(data: bytes) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in chunks(data):
            await response.write(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/"


async def net_floor(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        size = 0
        async for part in resp.content.iter_any():
            size += len(part)
    return 0


async def net_ours(url: str) -> int:
    decoder = SSEDecoder()
    n = 0
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        async for part in resp.content.iter_any():
            n += len(decoder.feed(part))
    return n


async def net_official(url: str) -> int:
    client = replicate.Client(api_token="r8_benchmark")
    n = 0
    async with httpx.AsyncClient() as http, http.stream("GET", url) as resp:
        async for _ in OfficialEventSource(client, resp):
            n += 1
    return n


async def net_httpx_sse(url: str) -> int:
    n = 0
    async with httpx.AsyncClient() as http, httpx_sse.aconnect_sse(http, "GET", url) as source:
        async for _ in source.aiter_sse():
            n += 1
    return n


async def timed(run: Callable[[], Awaitable[int]]) -> tuple[float, float, int]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    n = await run()
    return time.process_time() - cpu0, time.perf_counter() - wall0, n


async def bench(name: str, data: bytes, events: int, rounds: int) -> None:
    parts = chunks(data)
    runner, url = await serve(data)
    contenders: dict[str, Callable[[], Awaitable[int]]] = {
        "in memory: replicate_async SSEDecoder": lambda: mem_ours(parts),
        "in memory: replicate (official) decoder": lambda: mem_official(parts),
        "in memory: httpx-sse": lambda: mem_httpx_sse(parts),
        "socket: raw aiohttp read (floor)": lambda: net_floor(url),
        "socket: aiohttp + replicate_async SSEDecoder": lambda: net_ours(url),
        "socket: httpx + replicate (official) decoder": lambda: net_official(url),
        "socket: httpx + httpx-sse": lambda: net_httpx_sse(url),
    }
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    try:
        for _ in range(rounds):
            for key, run in contenders.items():
                c, w, n = await timed(run)
                if n and n < events:
                    raise AssertionError(f"{key} decoded {n} of {events} events")
                cpu[key].append(c)
                wall[key].append(w)
    finally:
        await runner.cleanup()
    print(f"\n{name}: {events:,} events, {len(data) / 1e6:.1f} MB, medians of {rounds}\n")
    print("| decoder | events/s | CPU µs / event | vs ours (events/s) |")
    print("|---|---:|---:|---:|")
    ours_mem = statistics.median(wall["in memory: replicate_async SSEDecoder"])
    ours_net = statistics.median(wall["socket: aiohttp + replicate_async SSEDecoder"])
    for key in contenders:
        w = statistics.median(wall[key])
        c = statistics.median(cpu[key])
        ref = ours_mem if key.startswith("in memory") else ours_net
        print(f"| {key} | {events / w:,.0f} | {c / events * 1e6:.2f} | {ref / w:.2f}x |")
    floor = statistics.median(wall["socket: raw aiohttp read (floor)"])
    print(f"\nend to end, ours vs the raw read: {ours_net / floor:.2f}x the floor's time")


async def main(small: int, large: int, rounds: int) -> None:
    await bench("small token events", small_stream(small), small + 1, rounds)
    await bench("large events (64 KiB each)", large_stream(large), large + 1, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200_000)
    parser.add_argument("--large", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.small, args.large, args.rounds))
