"""examples/relay_server.py: tokens relayed to a browser, checked in headless Chromium."""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import tempfile
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from examples.relay_server import create_app
from replicate_async import AsyncReplicate
from replicate_async.protocol.sse import SSEDecoder
from replicate_async.testing import Emulator

EXPECTED = "".join(f"token{i} " for i in range(40))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def relay(client: AsyncReplicate) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(client, "emulator/stream"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_the_relay_streams_every_token_then_done(relay: str) -> None:
    decoder = SSEDecoder()
    events = []
    async with aiohttp.ClientSession() as session, session.get(f"{relay}/stream") as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        async for chunk in resp.content.iter_any():
            events += decoder.feed(chunk)
    assert events[-1].event == "done"
    import json

    assert "".join(json.loads(e.data) for e in events[:-1]) == EXPECTED


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
async def test_a_browser_shows_the_whole_text(relay: str, emulator: Emulator) -> None:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{relay}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            dom, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    page = dom.decode()
    status = re.search(r'<p id="status">(.*?)</p>', page)
    out = re.search(r'<pre id="out">(.*?)</pre>', page, re.DOTALL)
    assert status is not None and out is not None, page[:500]
    assert status.group(1) == "done"
    assert html.unescape(out.group(1)) == EXPECTED
    # the browser never talked to Replicate (or the emulator) itself
    assert len(emulator.stream_requests) == 1
