"""Small HTTP servers on 127.0.0.1 that misbehave on purpose, byte by byte.

The emulator behaves like Replicate, faults included; these behave like what sits
between a client and Replicate on a bad day (a proxy's error page, a cut line, a server
dripping bytes, an echo of the request's headers). Raw asyncio rather than aiohttp's
server, so a reply can be broken anywhere: in its headers, its framing or its body.

A :class:`Hostile` server answers every request with its ``normal`` behaviour, except
the requests its queued faults match (first queued, first used). :func:`mini_api` is
a normal behaviour good enough to be the API for one operation at a time: it creates,
gets, lists and cancels predictions, takes uploads and streams events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import attrs


@attrs.define
class Request:
    """One request as the server read it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        """The path without its query."""
        return self.path.partition("?")[0]


Behaviour = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]
Match = Callable[[Request], bool]


def _anything(_: Request) -> bool:
    return True


class Hostile:
    """A server on 127.0.0.1: ``normal`` answers, except where a queued fault matches."""

    def __init__(self, normal: Behaviour | None = None) -> None:
        self.normal = normal or reply(404, b"not found", "text/plain")
        self.requests: list[Request] = []
        self._faults: list[list[Any]] = []  # [match, behaviour, times left]
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The server's root URL (no trailing slash)."""
        assert self._server is not None, "start it first (async with)"
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def fault(self, behaviour: Behaviour, *, when: Match = _anything, times: int = 1) -> None:
        """Answer the next ``times`` requests ``when`` matches with ``behaviour``."""
        self._faults.append([when, behaviour, times])

    async def __aenter__(self) -> Hostile:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def _behaviour_for(self, request: Request) -> Behaviour:
        for entry in self._faults:
            when, behaviour, _ = entry
            if when(request):
                entry[2] -= 1
                if entry[2] <= 0:
                    self._faults.remove(entry)
                return behaviour  # type: ignore[no-any-return]
        return self.normal

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await _read_request(reader)
            if request is not None:
                self.requests.append(request)
                await self._behaviour_for(request)(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", ""):
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        body = b"".join(parts)
    else:
        body = b""
    return Request(method, path, headers, body)


# -- the wire -------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    201: "Created",
    206: "Partial Content",
    302: "Found",
    404: "Not Found",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def head(status: int, headers: dict[str, str]) -> bytes:
    """A status line and headers; every reply closes its connection after it."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Whatever')}"]
    lines += [f"{name}: {value}" for name, value in {**headers, "Connection": "close"}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    """A well-formed reply with a Content-Length."""
    fields = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
    writer.write(head(status, fields) + body)
    await writer.drain()


def reply(
    status: int,
    body: bytes | str | dict[str, Any] | list[Any],
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Behaviour:
    """Always this reply."""
    data = _encode(body)

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        await send(writer, status, data, content_type, headers)

    return behave


def _encode(body: bytes | str | dict[str, Any] | list[Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def reset() -> Behaviour:
    """Read the request, then drop the connection with no reply."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    return behave


def hang(seconds: float) -> Behaviour:
    """Say nothing for ``seconds``, then hang up."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        writer.transport.abort()

    return behave


def then(first: Behaviour, normal: Behaviour) -> Behaviour:
    """Act as ``normal`` would (the server did the work), but answer as ``first`` does.

    ``normal`` writes into a throwaway writer: its effects (a prediction created) stay,
    its reply is replaced.
    """

    async def behave(request: Request, writer: asyncio.StreamWriter) -> None:
        await normal(request, _Discard())  # type: ignore[arg-type]
        await first(request, writer)

    return behave


class _Discard:
    """A writer that forgets what it is given."""

    def write(self, _: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


def drip(
    status: int, body: bytes, every: float, content_type: str = "application/json"
) -> Behaviour:
    """A reply whose body comes one byte every ``every`` seconds (for ever, near enough)."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        fields = {"Content-Type": content_type, "Content-Length": str(len(body))}
        writer.write(head(status, fields))
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)

    return behave


def truncated(
    status: int, body: bytes, keep: int, *, length: bool = True, **headers: str
) -> Behaviour:
    """``keep`` bytes of ``body``, then the connection drops.

    With ``length`` the headers promise the whole body (the cut is provable); without,
    there is no Content-Length and the connection's end looks like the body's end.
    """

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        fields = {"Content-Type": "application/json", **headers}
        if length:
            fields["Content-Length"] = str(len(body))
        writer.write(head(status, fields) + body[:keep])
        await writer.drain()
        if length:
            writer.transport.abort()
        else:
            writer.close()  # a clean close: all a close-delimited body can say

    return behave


def chunked(status: int, parts: list[bytes], *, final: bool = True, **headers: str) -> Behaviour:
    """A chunked body; without its ``final`` zero-size chunk, the connection drops."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        fields = {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}
        writer.write(head(status, {**fields, **headers}))
        for part in parts:
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        if final:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        else:
            await writer.drain()
            writer.transport.abort()

    return behave


def endless(status: int = 200) -> Behaviour:
    """A JSON reply that never ends (chunked, so no length warns of it)."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        fields = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        writer.write(head(status, fields) + b'c\r\n{"detail": "\r\n')
        part = b"x" * 65536
        while True:
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()

    return behave


def redirect(location: str, status: int = 302) -> Behaviour:
    """Send the client elsewhere."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        await send(writer, status, b"", "text/plain", {"Location": location})

    return behave


def echo(status: int, content_type: str = "application/json") -> Behaviour:
    """An error page that repeats the request's headers (Authorization too), as some do."""

    async def behave(request: Request, writer: asyncio.StreamWriter) -> None:
        said = "; ".join(f"{name}: {value}" for name, value in request.headers.items())
        if content_type == "application/json":
            body = json.dumps({"title": "Echo", "detail": f"You sent {said}", "headers": said})
        else:
            body = f"<html><body><pre>{said}</pre></body></html>"
        await send(writer, status, body.encode(), content_type)

    return behave


def sse(frames: list[bytes], *, end: str = "close", every: float = 0.0) -> Behaviour:
    """An event stream of raw ``frames``; then ``end``: "close" cleanly, "cut", or "hang"."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}))
        for frame in frames:
            writer.write(frame)
            await writer.drain()
            if every:
                await asyncio.sleep(every)
        if end == "cut":
            writer.transport.abort()
        elif end == "hang":
            await asyncio.sleep(3600)

    return behave


def comments_for_ever(every: float) -> Behaviour:
    """An event stream that sends only comments, for as long as the client listens."""

    async def behave(_: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, {"Content-Type": "text/event-stream"}))
        while True:
            writer.write(b": still here\n\n")
            await writer.drain()
            await asyncio.sleep(every)

    return behave


# -- a file host ----------------------------------------------------------------------------


def file_host(
    data: bytes,
    *,
    ranges: bool = True,
    etag: str | None = '"v1"',
    gzip_it: bool = False,
    length: bool = True,
    cut_after: int | None = None,
) -> Behaviour:
    """A file host serving ``data``: ranges (206, 416), an ETag, optionally gzip.

    ``cut_after``: every reply drops its connection after that many bytes of body.
    """

    async def behave(request: Request, writer: asyncio.StreamWriter) -> None:
        fields = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if etag is not None:
            fields["ETag"] = etag
        wanted = request.headers.get("range", "")
        if_range = request.headers.get("if-range")
        start, status = 0, 200
        if ranges and wanted.startswith("bytes=") and (if_range in (None, etag)):
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                await send(
                    writer, 416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"}
                )
                return
            status = 206
            fields["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if gzip_it:
            body = gzip.compress(body)
            fields["Content-Encoding"] = "gzip"
        if length:
            fields["Content-Length"] = str(len(body))
        writer.write(head(status, fields) + body[:cut_after])
        await writer.drain()
        if cut_after is not None and cut_after < len(body):
            writer.transport.abort()

    return behave


def sha(data: bytes) -> str:
    """A short digest to compare files by."""
    return hashlib.sha256(data).hexdigest()[:16]


# -- an API ---------------------------------------------------------------------------------

VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
OUTPUT = ["Hello", " ", "world"]


@attrs.define
class MiniAPI:
    """Enough of the API for one operation at a time; remembers what it created.

    ``stream_url`` is where the predictions it makes say their events are (another
    Hostile server, usually).
    """

    stream_url: str = ""
    created: list[dict[str, Any]] = attrs.field(factory=list)

    def prediction(self, body: dict[str, Any], status: str = "starting") -> dict[str, Any]:
        number = len(self.created) + 1
        pid = f"hostile{number:04d}"
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        return {
            "id": pid,
            "model": "acme/hello",
            "version": body.get("version", VERSION),
            "input": body.get("input", {}),
            "logs": "",
            "output": None,
            "error": None,
            "status": status,
            "created_at": now,
            "urls": {
                "get": f"/v1/predictions/{pid}",
                "cancel": f"/v1/predictions/{pid}/cancel",
                "stream": f"{self.stream_url}/v1/streams/{pid}",
            },
        }

    def finished(self, pid: str, status: str = "succeeded") -> dict[str, Any]:
        for made in self.created:
            if made["id"] == pid:
                return {
                    **made,
                    "status": status,
                    "output": OUTPUT if status == "succeeded" else None,
                }
        made = self.prediction({"version": VERSION, "input": {"prompt": "hi"}})
        return {**made, "id": pid, "status": status, "output": OUTPUT}

    async def __call__(self, request: Request, writer: asyncio.StreamWriter) -> None:
        route, method = request.route, request.method
        if method == "POST" and route.endswith("/predictions"):
            made = self.prediction(json.loads(request.body))
            self.created.insert(0, made)  # lists come newest first
            await send(writer, 201, json.dumps(made).encode())
        elif method == "POST" and route.endswith("/cancel"):
            pid = route.split("/")[-2]
            await send(writer, 200, json.dumps(self.finished(pid, "canceled")).encode())
        elif method == "GET" and route == "/v1/predictions":
            page = {"results": self.created, "next": None, "previous": None}
            await send(writer, 200, json.dumps(page).encode())
        elif method == "GET" and route.startswith("/v1/predictions/"):
            await send(writer, 200, json.dumps(self.finished(route.split("/")[-1])).encode())
        elif method == "POST" and route == "/v1/files":
            uploaded = {
                "id": "file1",
                "name": "upload",
                "content_type": "application/octet-stream",
                "size": len(request.body),
                "urls": {"get": "https://api.replicate.com/v1/files/file1"},
            }
            await send(writer, 201, json.dumps(uploaded).encode())
        else:
            await send(writer, 404, b'{"detail": "Not found."}')
