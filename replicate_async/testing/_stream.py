"""The emulator's streaming host (``stream.replicate.com``): server-sent events as nchan sends them.

``: hi`` first, then ``event:``/``id:``/``data:`` frames, ending with ``done`` (after an
``error`` on failure), resuming after ``Last-Event-ID``, and ``:408: 408 Request
Timeout`` before hanging up on an idle connection. Faults (``host="stream"``) cut a
connection after some events, optionally making the stream gone for good.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ._http import STATE, State, side_app, side_fault
from ._wire import sse_frame

__all__ = ["build_stream_app"]


async def stream_events(request: web.Request) -> web.StreamResponse:
    """``GET /v1/streams/{key}`` (text) or ``/v1/files/{key}`` (file outputs)."""
    state = request.app[STATE]
    state.traffic.stream.append(dict(request.headers))
    job = state.jobs.streams.get(request.match_info["key"])
    if job is None or job.stream_gone:
        return web.Response(status=404, text="Not Found")
    route = "/v1/files/{key}" if job.model.files else "/v1/streams/{key}"
    fault = state.faults.take("stream", request.method, route)
    instead = await side_fault(request, fault)
    if instead is not None:
        return instead
    # Resume after the last event the client saw, as nchan does with Last-Event-ID.
    last = request.headers.get("Last-Event-ID")
    ids = [event_id for event_id, _, _ in job.events]
    cursor = ids.index(last) + 1 if last in ids else 0
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(b": hi\n\n")
    sent = 0
    while True:
        changed = job.changed
        while cursor < len(job.events):
            event_id, event, data = job.events[cursor]
            await response.write(sse_frame(event, data, event_id))
            cursor += 1
            sent += 1
            if event == "done":
                await response.write_eof()
                return response
            if fault is not None and fault.cut_after is not None and sent >= fault.cut_after:
                if fault.gone:
                    job.stream_gone = True
                # Cut the line mid-stream, as a dropped connection does.
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
        try:
            await asyncio.wait_for(changed.wait(), state.config.stream_idle_timeout)
        except asyncio.TimeoutError:
            # After 30 s of silence the real host says so in a comment and hangs up.
            await response.write(b":408: 408 Request Timeout\n\n")
            await response.write_eof()
            return response


def build_stream_app(state: State) -> web.Application:
    """The streaming host (``stream.replicate.com`` stand-in)."""
    return side_app(state, {"/v1/streams/{key}": stream_events, "/v1/files/{key}": stream_events})
