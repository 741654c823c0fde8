"""``replicate-async demo``: the library at work against the built-in emulator, no token."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
import time
from pathlib import Path

from ..client import AsyncReplicate
from ..errors import InputValidationError, ReplicateError
from ..progress import TextBar

__all__ = ["demo"]


async def demo(out: str | None) -> int:
    """Run the demo; 0 when it went through."""
    from ..testing import Emulator

    out_dir = Path(out or tempfile.mkdtemp(prefix="replicate-async-demo-"))
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

            print("\n6. use(): a model as a function, its input checked before any request")
            echo = client.use("emulator/echo")
            print(f"   {await echo(text='checked, then run')!r}")
            try:
                await echo(txt="a typo")
            except InputValidationError as exc:
                print(
                    f"   InputValidationError: {exc.problems[0].field}: {exc.problems[0].message}"
                )

            print("\n7. run_many(journal=...): run the same job again, nothing is created twice")
            journal = out_dir / "job.journal.jsonl"
            await asyncio.to_thread(journal.unlink, missing_ok=True)
            jobs = [{"text": f"item {n}"} for n in range(10)]
            first = [r async for r in client.run_many("emulator/echo", jobs, journal=journal)]
            before = sum(emu.requests.values())
            again = [r async for r in client.run_many("emulator/echo", jobs, journal=journal)]
            made = sum(emu.requests.values()) - before
            print(
                f"   first run: {len(first)} results; second run: "
                f"{sum(r.replayed for r in again)} replayed from {journal.name}, {made} requests"
            )
    print("\nDone. Against the real API: set REPLICATE_API_TOKEN and call the same methods.")
    return 0
