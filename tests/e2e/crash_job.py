"""A journaled job in a process of its own, for the crash tests to kill.

``python -m tests.e2e.crash_job URL TOKEN JOURNAL COUNT [WHEN:METHOD:N]``: runs
``me/crashy`` over inputs ``{"i": 0..COUNT-1}`` with ``run_many(journal=JOURNAL,
replay=False)``, printing ``START``, then ``RESULT index output`` per result, then
``END``. ``before:created:3`` kills the process (SIGKILL, itself) at the third call of
``Journal.created``, before it writes; ``after:sending:2`` right after the second
``Journal.sending`` wrote its line; any journal method and count.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

from replicate_async import AsyncReplicate, PollPolicy, RateLimits
from replicate_async.journal import Journal


def arm(spec: str) -> None:
    """Make the Nth call of a Journal method kill this process, before or after it runs."""
    when, method, nth = spec.split(":")
    real = getattr(Journal, method)
    calls = 0

    async def dying(self: Journal, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        mine = calls  # others may call meanwhile: this call's own number
        if mine == int(nth) and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = await real(self, *args, **kwargs)
        if mine == int(nth) and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(Journal, method, dying)


async def main(url: str, token: str, journal: str, count: int) -> None:
    polling = PollPolicy(first=0.02, factor=1.5, cap=0.1)
    async with AsyncReplicate(
        token, url, polling=polling, rate_limits=RateLimits.unlimited()
    ) as client:
        print("START", flush=True)
        inputs = ({"i": i} for i in range(count))
        async for result in client.run_many(
            "me/crashy", inputs, journal=journal, replay=False, concurrency=4
        ):
            print("RESULT", result.index, json.dumps(result.output), flush=True)
    print("END", flush=True)


if __name__ == "__main__":
    url, token, journal, count, *kill = sys.argv[1:]
    if kill:
        arm(kill[0])
    asyncio.run(main(url, token, journal, int(count)))
