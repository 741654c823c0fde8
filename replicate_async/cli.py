"""Command line: ``python -m replicate_async run|predictions|models signature|demo``."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .client import AsyncReplicate
from .errors import ReplicateError
from .files import FileOutput
from .progress import TextBar

__all__ = ["main"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, FileOutput):
        return value.url
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON, else strings."""
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"input must be key=value, got {pair!r}")
        try:
            data[key] = json.loads(raw)
        except ValueError:
            data[key] = raw
    return data


async def _run(args: argparse.Namespace) -> None:
    async with AsyncReplicate() as client:
        output = await client.run(args.ref, input=_parse_inputs(args.input))
        print(json.dumps(_jsonable(output), indent=2))


async def _models(args: argparse.Namespace) -> None:
    async with AsyncReplicate() as client:
        print(await client.use(args.ref).signature())


async def _predictions(args: argparse.Namespace) -> None:
    async with AsyncReplicate() as client:
        if args.action == "list":
            count = 0
            async for p in client.predictions.list():
                print(f"{p.id}  {p.status:<10}  {p.model or p.version}  {p.created_at}")
                count += 1
                if count >= args.limit:
                    break
            return
        if args.action == "get":
            p = await client.predictions.get(args.id)
        elif args.action == "cancel":
            p = await client.predictions.cancel(args.id)
        else:
            p = await client.predictions.wait(args.id)
        print(json.dumps({"id": p.id, "status": p.status, "output": p.output, "error": p.error}))


async def _demo(args: argparse.Namespace) -> None:
    from .testing import Emulator

    out_dir = Path(args.out or tempfile.mkdtemp(prefix="replicate-async-demo-"))
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    async with Emulator(start_delay=0.05) as emu:
        print(f"Emulator of Replicate's API running at {emu.url} (no token, no network)\n")
        async with AsyncReplicate(
            api_token=emu.token, base_url=emu.url, ssl=emu.ssl_context()
        ) as client:
            print("1. run(): create, wait, decode")
            output = await client.run("emulator/echo", input={"text": "hello from replicate_async"})
            print(f"   emulator/echo -> {output!r}\n")

            n, concurrency, seconds = 40, 10, 0.3
            print(f"2. run_many(): {n} predictions of {seconds} s each, {concurrency} at a time")
            started = time.perf_counter()
            ok = 0
            inputs = [{"seconds": seconds} for _ in range(n)]
            with TextBar(sys.stdout, prefix="   ") as show:
                async for result in client.run_many(
                    "emulator/sleep", inputs, concurrency=concurrency, progress=show
                ):
                    ok += result.ok
            elapsed = time.perf_counter() - started
            polls = emu.count("GET", "/predictions/{id}") + emu.count("GET", "/predictions")
            print(
                f"   {ok}/{n} succeeded in {elapsed:.2f} s "
                f"(one after another: {n * seconds:.0f} s); {polls} polls.\n"
                "   Creates go as fast as Replicate's limits allow (it grants a burst, then\n"
                "   10 a second), and the client keeps inside them by itself: no 429.\n"
            )

            print("3. file output saved to disk (streamed in chunks, atomic rename)")
            files = await client.run(
                "emulator/images", input={"num_outputs": 1, "size_bytes": 2_000_000}
            )
            saved = await files[0].save(out_dir / "image-0.png")
            data = await asyncio.to_thread(saved.path.read_bytes)
            digest = hashlib.sha256(data).hexdigest()[:16]
            print(
                f"   {files[0].url}\n   -> {saved.path} ({saved.size:,} bytes, sha256 {digest}…)\n"
            )

            print("4. stream(): text as the model makes it (server-sent events)")
            print("   ", end="")
            stream = client.stream("emulator/stream", input={"tokens": 12, "delay": 0.03})
            async for event in stream:
                print(str(event), end="", flush=True)
            print("\n")

            print("5. a failing model raises PredictionFailed with its error and logs")
            try:
                await client.run("emulator/fail")
            except ReplicateError as exc:
                print(f"   {type(exc).__name__}: {str(exc).splitlines()[0]}")
    print("\nDone. Against the real API: set REPLICATE_API_TOKEN and call the same methods.")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m replicate_async`` and the ``replicate-async`` script."""
    parser = argparse.ArgumentParser(prog="replicate-async", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a model and print its output")
    run.add_argument("ref", help="owner/name, owner/name:version or a version id")
    run.add_argument("input", nargs="*", help="key=value inputs (values may be JSON)")
    preds = sub.add_parser("predictions", help="get, cancel, wait for or list predictions")
    preds.add_argument("action", choices=["get", "cancel", "wait", "list"])
    preds.add_argument("id", nargs="?")
    preds.add_argument("--limit", type=int, default=20)
    models = sub.add_parser("models", help="about models: their signature")
    models.add_argument("action", choices=["signature"])
    models.add_argument("ref", help="owner/name or owner/name:version")
    demo = sub.add_parser("demo", help="show the library at work against the built-in emulator")
    demo.add_argument("--out", help="directory for the demo's output file (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.command == "predictions" and args.action != "list" and not args.id:
        parser.error(f"predictions {args.action} needs a prediction id")
    handlers = {"run": _run, "predictions": _predictions, "models": _models, "demo": _demo}
    handler = handlers[args.command]
    try:
        asyncio.run(handler(args))
    except (ReplicateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
