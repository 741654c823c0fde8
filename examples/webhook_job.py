"""A restartable bulk job that learns of each completion by webhook: no polls, no repeats.

    python -m examples.webhook_job                      # against the built-in emulator
    REPLICATE_API_TOKEN=r8_... python -m examples.webhook_job --model owner/name \\
        --public-url https://YOUR-TUNNEL.example.com/replicate/webhook --port 8080

Replicate must be able to reach the receiver: on a laptop, run a tunnel (``cloudflared
tunnel --url http://localhost:8080``, ``ngrok http 8080``) and pass its URL as
``--public-url``; the receiver binds ``--host``/``--port`` where the tunnel forwards.
Results are written to ``--out`` (one JSON line per input, under its index), and the
job's journal beside it: kill the job at any moment and run the same command again,
and it goes on where it stopped, creating nothing twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiofiles

from replicate_async import AsyncReplicate, Receiver, RunResult


@contextlib.asynccontextmanager
async def service(token: str | None, base_url: str | None) -> AsyncIterator[AsyncReplicate]:
    """A client for Replicate, or for an emulator of it started here when no token is set."""
    if token:
        async with AsyncReplicate(token, base_url) as client:
            yield client
        return
    from replicate_async.testing import Emulator

    async with Emulator() as emulator, AsyncReplicate(emulator.token, emulator.url) as client:
        yield client


def record(result: RunResult) -> dict[str, Any]:
    """One output line: written under the input's index, so a repeat overwrites itself."""
    line: dict[str, Any] = {"index": result.index, "input": dict(result.input)}
    if result.ok:
        line["output"] = result.output  # file outputs as their URLs (use_file_output=False)
    else:
        line["error"] = str(result.error)
    return line


async def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    inputs = [{"text": f"item {n}"} for n in range(args.count)]
    receiver = Receiver(args.public_url, host=args.host, port=args.port, grace=args.grace)
    async with (
        receiver,
        service(args.token, args.base_url) as client,
        aiofiles.open(out, "a") as sink,
    ):
        async for result in client.run_many(
            args.model,
            inputs,
            journal=out.with_suffix(".journal.jsonl"),
            replay=False,  # results written by an earlier run are not written again
            webhook=receiver,
            concurrency=args.concurrency,
            use_file_output=False,
        ):
            await sink.write(json.dumps(record(result)) + "\n")
            await sink.flush()
    print(f"{args.count} inputs done; results in {out}; webhooks: {receiver.stats}")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="emulator/echo")
    parser.add_argument("--count", type=int, default=100, help="inputs to run")
    parser.add_argument("--out", default="webhook_job.jsonl", help="results, JSON lines")
    parser.add_argument("--public-url", default=None, help="the URL Replicate calls")
    parser.add_argument("--host", default="127.0.0.1", help="where the receiver binds")
    parser.add_argument("--port", type=int, default=0, help="its port (0: any free one)")
    parser.add_argument("--grace", type=float, default=60.0, help="seconds before polling")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--token", default=None, help="default: REPLICATE_API_TOKEN")
    parser.add_argument("--base-url", default=None)
    args = parser.parse_args(argv)
    if args.token is None:
        import os

        args.token = os.environ.get("REPLICATE_API_TOKEN")
    return args


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
