"""Shared fixtures: a fresh emulator and a client pointed at it, with fast polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from replicate_async import AsyncReplicate, PollPolicy
from replicate_async.testing import Emulator

#: Replicate's recorded and documented payloads and its OpenAPI schema, copied into the repo
FIXTURES = Path(__file__).parent / "fixtures" / "replicate"
PAYLOADS = FIXTURES

#: polls every 20-100 ms, so end-to-end tests of slow predictions stay fast
FAST_POLLING = PollPolicy(first=0.02, factor=1.5, cap=0.1)


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        # As the pytest plugin does for users: clients made now trust the emulator's
        # HTTPS hosts (its throwaway authority added to the system's), verification on.
        monkeypatch.setenv("SSL_CERT_FILE", emu.ca_bundle)
        yield emu


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[AsyncReplicate]:
    async with AsyncReplicate(
        api_token=emulator.token, base_url=emulator.url, polling=FAST_POLLING
    ) as c:
        yield c
        # Clean-up the client does by itself (cancelling what a test abandoned) may still
        # be on its way; once it is done, nothing may be checked out: no leaked connection.
        await c._janitor.aclose()
        in_use, _ = c._session.transport.connector_stats()
        assert in_use == 0, f"{in_use} connections still in use at the end of the test"


async def none_running(emulator: Emulator, within: float = 10.0) -> bool:
    """Whether every prediction the emulator holds has ended, within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if all(job.terminal for job in emulator.predictions.values()):
            return True
        await asyncio.sleep(0.02)
    return False


async def cancel_after(work: Awaitable[Any], seconds: float = 0.3) -> None:
    """Start ``work``, cancel it ``seconds`` later, and check that it was cancelled."""
    task = asyncio.ensure_future(work)
    await asyncio.sleep(seconds)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return
    raise AssertionError("the work ended before it could be cancelled")
