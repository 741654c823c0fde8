"""SSE: CPU per event and peak memory of a stream, ours against two floors and the peers.

A server in its own process sends a stream of small token events (as a language model
sends them; ids as Replicate's: ``1690212292:7``) or of large ones (64 KiB of data
each), in 64 KiB writes. Each client runs in a process of its own, so its CPU time
(``process_time``) and its peak RSS growth (``ru_maxrss`` after the stream over before
it) are its own:

- raw aiohttp read: the bytes, nothing parsed (the first floor);
- raw split-and-parse: aiohttp, the bytes split into lines and blocks by hand, the
  fields of each event taken (the second floor: what a hand-written client costs);
- replicate_async ``SSEDecoder`` on aiohttp (the decoder alone);
- replicate_async ``client.predictions.stream(prediction)``: everything a user gets
  (``ServerSentEvent`` objects, resume bookkeeping, output accounting);
- the official ``replicate`` package's decoder, and httpx-sse, on an httpx stream.

    python -m benchmarks.sse [--small 100000,1000000] [--large 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

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


# -- the server (its own process) ------------------------------------------------------------


def serve(kind: str, n: int) -> None:
    """Serve one stream at /, again and again; print the port, run until killed."""
    from aiohttp import web

    data = small_stream(n) if kind == "small" else large_stream(n)
    parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in parts:
            await response.write(part)
        await response.write_eof()
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the clients (each in a child process); each returns how many events it saw -------------


async def raw_read(url: str) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        async for _ in resp.content.iter_any():
            pass
    return 0


async def _split_and_parse(url: str) -> AsyncIterator[tuple[str, str, str | None]]:
    """A careful hand-written client: blocks and lines split, fields taken, events yielded."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        rest = b""
        async for part in resp.content.iter_any():
            blocks = (rest + part).split(b"\n\n")
            rest = blocks.pop()
            for block in blocks:
                event, data, event_id = "message", [], None
                for line in block.decode().split("\n"):
                    field, _, value = line.partition(": ")
                    if field == "data":
                        data.append(value)
                    elif field == "event":
                        event = value
                    elif field == "id":
                        event_id = value
                if data:
                    yield event, "\n".join(data), event_id


async def raw_parse(url: str) -> int:
    n = 0
    async for _ in _split_and_parse(url):
        n += 1
    return n


async def ours_decoder(url: str) -> int:
    import aiohttp

    from replicate_async.protocol.sse import SSEDecoder

    decoder = SSEDecoder()
    n = 0
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        async for part in resp.content.iter_any():
            n += len(decoder.feed(part))
    return n


async def ours_stream(url: str) -> int:
    from replicate_async import AsyncReplicate, Prediction
    from replicate_async.protocol.convert import converter

    prediction = converter.structure(
        {"id": "bench", "status": "processing", "urls": {"get": url, "stream": url}}, Prediction
    )
    n = 0
    async with AsyncReplicate(api_token="r8_benchmark", base_url="http://127.0.0.1:9/v1") as c:
        async for _ in c.predictions.stream(prediction):
            n += 1
    return n + 1  # the done event ends the stream without being yielded


async def official(url: str) -> int:
    import httpx
    import replicate
    from replicate.stream import EventSource

    client = replicate.Client(api_token="r8_benchmark")
    n = 0
    async with httpx.AsyncClient() as http, http.stream("GET", url) as resp:
        async for _ in EventSource(client, resp):
            n += 1
    return n + 1


async def httpx_sse(url: str) -> int:
    import httpx
    import httpx_sse

    n = 0
    async with httpx.AsyncClient() as http, httpx_sse.aconnect_sse(http, "GET", url) as source:
        async for _ in source.aiter_sse():
            n += 1
    return n


CLIENTS: dict[str, tuple[str, Callable[[str], Awaitable[int]]]] = {
    "raw": ("raw aiohttp read (floor 1)", raw_read),
    "parse": ("raw split-and-parse loop (floor 2)", raw_parse),
    "decoder": ("replicate_async SSEDecoder on aiohttp", ours_decoder),
    "stream": ("**replicate_async predictions.stream()**", ours_stream),
    "official": ("replicate (official) decoder on httpx", official),
    "httpx_sse": ("httpx-sse on httpx", httpx_sse),
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(name: str, url: str) -> None:
    run = CLIENTS[name][1]
    # Import every client's modules first: the baseline then holds them, whoever runs.
    import aiohttp  # noqa: F401
    import httpx  # noqa: F401
    import httpx_sse  # noqa: F401
    import replicate  # noqa: F401

    import replicate_async  # noqa: F401

    base = _rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    n = asyncio.run(run(url))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(json.dumps({"cpu": cpu, "wall": wall, "n": n, "rss_growth_mb": _rss_mb() - base}))


def run_child(name: str, url: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.sse", "--child", name, "--url", url],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench(kind: str, n: int, rounds: int) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.sse", "--serve", kind, "--events", str(n)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}/"
        results: dict[str, list[dict[str, float]]] = {k: [] for k in CLIENTS}
        for r in range(rounds):
            names = list(CLIENTS)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                result = run_child(name, url)
                if result["n"] and result["n"] < n + 1:
                    raise AssertionError(f"{name} saw {result['n']} of {n + 1} events")
                results[name].append(result)
    finally:
        server.kill()
        server.wait(timeout=10)
    label = "small token events" if kind == "small" else "large events (64 KiB each)"
    print(f"\n{label}: {n:,} events, medians of {rounds} (each client in its own process)\n")
    print(
        "| client | events/s | CPU µs / event | vs split-and-parse (CPU) "
        "| vs raw read (CPU) | peak RSS growth (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    cpu = {k: statistics.median(r["cpu"] for r in v) for k, v in results.items()}
    for key, (title, _) in CLIENTS.items():
        wall = statistics.median(r["wall"] for r in results[key])
        rss = statistics.median(r["rss_growth_mb"] for r in results[key])
        print(
            f"| {title} | {n / wall:,.0f} | {cpu[key] / n * 1e6:.2f} "
            f"| {cpu[key] / cpu['parse']:.2f}x | {cpu[key] / cpu['raw']:.2f}x | {rss:.1f} |"
        )


def main(small: list[int], large: int, rounds: int) -> None:
    for n in small:
        bench("small", n, rounds)
    if large:
        bench("large", large, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", default="100000,1000000", help="small-event stream lengths")
    parser.add_argument("--large", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.events)
    elif args.child:
        child(args.child, args.url)
    else:
        main([int(s) for s in args.small.split(",")], args.large, args.rounds)
