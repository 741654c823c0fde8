"""The emulator's delivery host (``replicate.delivery``): output files, with ranges.

It sends ``Content-Length``, an ``ETag`` and ``Accept-Ranges: bytes`` and answers ranges
with 206, as the real host does. Faults (``host="delivery"``) cut a body short; the
delivery settings make it ignore ranges or forget every file.
"""

from __future__ import annotations

import re

from aiohttp import web

from ._http import STATE, State, side_app, side_fault
from ._outputs import pattern_chunks

__all__ = ["build_delivery_app"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def deliver(request: web.Request) -> web.StreamResponse:
    """``GET /{key}/{name}``: an output file, with ranges."""
    state = request.app[STATE]
    # Recorded so tests can prove the API token never reaches this host.
    state.traffic.delivery.append(dict(request.headers))
    fault = state.faults.take("delivery", request.method, "/{key}/{name}")
    instead = await side_fault(request, fault)
    if instead is not None:
        return instead
    settings = state.delivery
    published = state.outputs.files.get(request.match_info["key"])
    if published is None or published.name != request.match_info["name"] or settings.expired:
        return web.Response(status=404, text="Not Found")
    size = published.size
    etag = published.etag
    start, end, status = 0, size - 1, 200
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted and settings.ranges and (if_range is None or if_range == etag):
        match = _RANGE.match(wanted.strip())
        if match is None or (not match.group(1) and not match.group(2)):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        if match.group(1):
            start = int(match.group(1))
            end = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
        else:  # a suffix range: the last N bytes
            start = max(0, size - int(match.group(2)))
        if start >= size or start > end:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
    headers = {
        "Content-Type": published.content_type,
        "Content-Length": str(end - start + 1),
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=3600",
        "ETag": etag,
    }
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    cut = fault.cut_after if fault is not None else None
    sent = 0
    for chunk in pattern_chunks(published.seed, end + 1, start):
        if cut is not None and sent + len(chunk) > cut:
            await response.write(chunk[: cut - sent])
            # Drop the connection mid-body, as a flaky network does.
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write(chunk)
        sent += len(chunk)
    await response.write_eof()
    return response


def build_delivery_app(state: State) -> web.Application:
    """The file host (``replicate.delivery`` stand-in)."""
    return side_app(state, {"/{key}/{name}": deliver})
