"""A journaled job killed (SIGKILL) at 20+ instants and run again until it ends.

Across all the runs the emulator must show every input created exactly once, the
journal every result taken exactly once, and the printed results every input, a result
printed twice only when it was the last one a killed run printed (the caller held it:
delivery to the caller is at least once, creation exactly once).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from replicate_async.testing import Emulator, RunContext

COUNT = 300
#: kills at a moment in a journal method (the Nth call of the run, before or after it
#: writes): between a create's reply and its id's line, after a send's line and before
#: the send, before an end's line, while a take is recorded...
HOOKED = [
    "before:created:1",
    "before:created:5",
    "after:created:3",
    "after:sending:2",
    "before:sending:6",
    "before:done:2",
    "after:done:4",
    "before:taken:3",
    "after:taken:7",
    "after:done:1",
    "before:taken:1",
]
#: kills at a time after the run started, seconds
TIMED = [0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.4, 0.55, 0.7, 0.9]


async def crashy(input: dict[str, Any], ctx: RunContext) -> int:
    # Different lengths, so that completion order differs from input order.
    await ctx.sleep(0.02 + (input["i"] * 7919 % 13) / 100)
    return int(input["i"]) * 3


async def run_once(
    emulator: Emulator, journal: Path, kill: str | None, after: float | None
) -> tuple[list[str], bool]:
    """One run of the job; its printed lines, and whether it was killed."""
    args = [emulator.url, emulator.token, str(journal), str(COUNT)]
    if kill is not None:
        args.append(kill)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.crash_job",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert process.stdout is not None
    printed: list[str] = []
    started = asyncio.Event()

    async def read() -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode().strip()
            printed.append(text)
            if text == "START":
                started.set()

    reader = asyncio.ensure_future(read())
    try:
        if after is not None:
            await asyncio.wait_for(started.wait(), 30)
            await asyncio.sleep(after)
            if process.returncode is None:
                os.kill(process.pid, signal.SIGKILL)
        code = await asyncio.wait_for(process.wait(), 60)
        await asyncio.wait_for(reader, 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        reader.cancel()
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode()
    killed = code == -signal.SIGKILL
    assert killed or code == 0, f"the job failed (exit {code}):\n{errors}"
    return printed, killed


async def test_a_job_killed_at_any_instant_creates_each_input_once_and_loses_nothing(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "job.jsonl"
    schedule: list[tuple[str | None, float | None]] = [(kill, None) for kill in HOOKED]
    schedule += [(None, after) for after in TIMED]
    random.Random(5).shuffle(schedule)
    results: Counter[int] = Counter()
    outputs: dict[int, Any] = {}
    kills = 0
    async with Emulator(tls=False) as emulator:
        emulator.add_model("me/crashy", crashy)
        runs: list[tuple[list[str], bool]] = []
        for kill, after in [*schedule, (None, None)]:
            printed, killed = await run_once(emulator, journal, kill, after)
            runs.append((printed, killed))
            kills += killed
            printed_results = [line.split(" ", 2) for line in printed if line.startswith("RESULT")]
            for _, index, output in printed_results:
                results[int(index)] += 1
                outputs[int(index)] = json.loads(output)
            if killed:
                continue
            assert printed[-1] == "END"
        created = Counter(job.input["i"] for job in emulator.predictions.values())

    summary = [(sum(line.startswith("RESULT") for line in lines), killed) for lines, killed in runs]
    assert kills >= 20, f"only {kills} runs were killed: (results, killed) {summary}"
    # Created exactly once each, across every run.
    assert created == Counter(range(COUNT))
    # Every result reached the caller, with its output...
    assert set(results) == set(range(COUNT))
    assert outputs == {i: i * 3 for i in range(COUNT)}
    # ...twice only if a killed run was holding it (its last printed result).
    held = {
        int(lines[-1].split()[1])
        for lines, killed in runs
        if killed and lines and lines[-1].startswith("RESULT")
    }
    twice = {index for index, n in results.items() if n > 1}
    assert twice <= held and all(n <= 2 for n in results.values())
    # The journal says each was taken once, and ended once.
    records = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    taken = Counter(r["i"] for r in records if r.get("taken"))
    assert taken == Counter(range(COUNT))
    ends = Counter(r["i"] for r in records if "done" in r)
    assert set(ends) == set(range(COUNT))
