"""Relay a model's tokens to the browser as they are made: aiohttp.web + client.stream().

    python -m examples.relay_server                # against the built-in emulator
    REPLICATE_API_TOKEN=r8_... python -m examples.relay_server --model meta/meta-llama-3-8b-instruct

Open http://127.0.0.1:8080/ and the page fills in token by token. The browser talks only
to this server (an EventSource on /stream); this server talks to Replicate with one
shared client. A browser that goes away closes its stream, and with it the upstream one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from replicate_async import AsyncReplicate, ReplicateError

CLIENT: web.AppKey[AsyncReplicate] = web.AppKey("client", AsyncReplicate)
MODEL: web.AppKey[str] = web.AppKey("model", str)

PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><title>relay: streaming</title></head>
<body>
<h1>replicate_async relay</h1>
<p id="status">streaming…</p>
<pre id="out"></pre>
<script>
  const out = document.getElementById("out");
  const status = document.getElementById("status");
  const prompt = new URLSearchParams(location.search).get("prompt") || "Tell me a story";
  const source = new EventSource("/stream?prompt=" + encodeURIComponent(prompt));
  source.onmessage = (event) => { out.textContent += JSON.parse(event.data); };
  source.addEventListener("done", () => {
    source.close(); status.textContent = "done"; document.title = "relay: done";
  });
  source.addEventListener("failed", (event) => {
    source.close(); status.textContent = "failed: " + JSON.parse(event.data);
  });
</script>
</body>
</html>
"""


async def page(request: web.Request) -> web.Response:
    """The page: an EventSource that appends each token to the <pre>."""
    return web.Response(text=PAGE, content_type="text/html")


async def stream(request: web.Request) -> web.StreamResponse:
    """Relay ``client.stream(...)`` as SSE: one ``message`` per token, then ``done``."""
    client = request.app[CLIENT]
    prompt = request.query.get("prompt", "")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    try:
        async with client.stream(request.app[MODEL], input=_input(prompt)) as events:
            async for event in events:
                text = str(event)
                if text:
                    await response.write(f"data: {json.dumps(text)}\n\n".encode())
        await response.write(b"event: done\ndata: {}\n\n")
    except ReplicateError as exc:
        message = json.dumps(str(exc).splitlines()[0])
        await response.write(f"event: failed\ndata: {message}\n\n".encode())
    await response.write_eof()
    return response


def _input(prompt: str) -> dict[str, object]:
    # The emulator's streaming model takes a token count; a real LLM takes the prompt.
    return {"prompt": prompt, "tokens": 40, "delay": 0.01} if prompt else {"tokens": 40}


def create_app(client: AsyncReplicate, model: str) -> web.Application:
    """The relay app around an open client (the caller owns and closes it)."""
    app = web.Application()
    app[CLIENT] = client
    app[MODEL] = model
    app.router.add_get("/", page)
    app.router.add_get("/stream", stream)
    return app


@contextlib.asynccontextmanager
async def _client(use_emulator: bool) -> AsyncIterator[AsyncReplicate]:
    if not use_emulator:
        async with AsyncReplicate() as client:
            yield client
        return
    from replicate_async.testing import Emulator

    async with (
        Emulator() as emu,
        AsyncReplicate(api_token=emu.token, base_url=emu.url, ssl=emu.ssl_context()) as c,
    ):
        yield c


async def main(host: str, port: int, model: str | None) -> None:
    """Serve until interrupted."""
    async with _client(model is None) as client:
        runner = web.AppRunner(create_app(client, model or "emulator/stream"))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        print(f"relay on http://{host}:{port}/ (model {model or 'emulator/stream'})", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="relay model output to browsers as SSE")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", help="a streaming model (default: the emulator's)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.host, args.port, args.model))
