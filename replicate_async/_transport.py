"""The only module that touches aiohttp: the pool, timeouts, bodies, exception mapping.

Everything above it sees :class:`Response` (a fully read reply) or :class:`StreamingBody`
(a reply read in chunks), and our own errors: users never import aiohttp to catch one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import attrs
from multidict import CIMultiDictProxy

from ._aiter import AsyncClosing
from .errors import (
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    MalformedResponseError,
    RequestTimeoutError,
    TransportError,
)

__all__ = ["FormField", "HoldsBody", "Response", "StreamingBody", "Timeouts", "Transport"]


@attrs.frozen(kw_only=True)
class Timeouts:
    """Network timeouts in seconds.

    ``read`` bounds the wait for each chunk of a reply; a create sent with
    ``Prefer: wait=N`` gets ``N + wait_margin`` at least, since the server holds it open.
    ``total`` bounds a whole request (None: no bound, downloads may be long).
    """

    connect: float = 10.0
    read: float = 30.0
    total: float | None = None
    wait_margin: float = 15.0


@attrs.frozen
class FormField:
    """One part of a multipart body.

    ``value`` is a str, bytes, a path, a binary file object or an async iterable of
    bytes; the last three are streamed, never read whole.
    """

    name: str
    value: Any
    filename: str | None = None
    content_type: str | None = None


@attrs.frozen
class Response:
    """A reply read whole: status, headers and body bytes, and the request it answers."""

    status: int
    reason: str | None
    headers: CIMultiDictProxy[str]
    body: bytes
    method: str
    url: str


class StreamingBody(AsyncClosing):
    """A reply whose body is read in chunks; close it (or use ``async with``) when done."""

    __slots__ = ("_method", "_resp", "_url")

    def __init__(self, resp: aiohttp.ClientResponse, method: str, url: str) -> None:
        self._resp = resp
        self._method = method
        self._url = url

    @property
    def status(self) -> int:
        """HTTP status code."""
        return self._resp.status

    @property
    def reason(self) -> str | None:
        """HTTP reason phrase."""
        return self._resp.reason

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """Reply headers."""
        return self._resp.headers

    async def read(self) -> bytes:
        """Read the rest of the body (for error replies, which are small)."""
        try:
            return await self._resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
            raise _map(exc, self._method, self._url, sent=True) from exc

    async def read_chunk(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body as they arrive; b"" at its end."""
        try:
            return await self._resp.content.read(size)
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
            raise _map(exc, self._method, self._url, sent=True) from exc

    async def read_any(self) -> bytes:
        """The next bytes that arrive, as soon as any do; b"" at the end of the body."""
        try:
            return await self._resp.content.readany()
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
            raise _map(exc, self._method, self._url, sent=True) from exc

    def close(self) -> None:
        """Release the connection. An unfinished body closes it rather than pool it."""
        self._resp.close()

    async def aclose(self) -> None:
        """Same as :meth:`close`, for ``async with``."""
        self.close()


class HoldsBody(AsyncClosing):
    """An iterator reading a :class:`StreamingBody`: a download, an event stream.

    Dropping it (``break`` out of ``async for``) gives the connection back at once,
    rather than when the garbage collector gets to it.
    """

    _body: StreamingBody | None = None

    def _close_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # the loop may be gone at interpreter exit
            self._close_body()


def _map(exc: BaseException, method: str, url: str, *, sent: bool) -> TransportError:
    """Translate an aiohttp / asyncio failure into ours, saying whether the request left."""
    where = f"{method} {url}"
    kw: dict[str, Any] = {"method": method, "url": url}
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connect_timeout is not None and isinstance(exc, connect_timeout):
        return ConnectError(f"{where}: timed out connecting. Check the network and base_url.", **kw)
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Refused, DNS failure, unreachable: the request bytes were never written.
        return ConnectError(
            f"{where}: could not connect ({exc.os_error or exc}). Check the network and base_url.",
            **kw,
        )
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, aiohttp.ServerTimeoutError)):
        return RequestTimeoutError(
            f"{where}: timed out waiting for the reply. "
            "Raise the read timeout (AsyncReplicate(timeouts=Timeouts(read=...))) if the "
            "server is slow.",
            **kw,
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        return MalformedResponseError(f"{where}: the server sent a malformed reply ({exc}).", **kw)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, OSError)):
        return ConnectionLostError(
            f"{where}: the connection was lost {'after sending' if sent else 'while sending'} "
            f"({type(exc).__name__}: {exc}).",
            **kw,
        )
    return ConnectionLostError(f"{where}: {type(exc).__name__}: {exc}", **kw)


class Transport:
    """One aiohttp session and its connection pool, created inside the running loop."""

    def __init__(
        self,
        *,
        max_connections: int,
        timeouts: Timeouts,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._max_connections = max_connections
        self.timeouts = timeouts
        self._user_agent = user_agent
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._default_timeout = aiohttp.ClientTimeout(
            total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.read
        )

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError(
                "This AsyncReplicate client is closed; create a new one "
                "(or keep using it inside its `async with` block)."
            )
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise ClientClosedError(
                "This AsyncReplicate client belongs to another event loop; create one "
                "client per event loop (for example inside each asyncio.run())."
            )
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=30.0,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # We decode bodies ourselves; aiohttp's raise_for_status stays off.
                auto_decompress=True,
            )
        return self._session

    def ensure_open(self) -> None:
        """Raise a clear error if closed or on another loop; start the pool if needed."""
        self._get_session()

    def connector_stats(self) -> tuple[int, int]:
        """(connections in use, idle connections in the pool), for leak checks in tests."""
        if self._session is None or self._session.connector is None:
            return (0, 0)
        connector = self._session.connector
        acquired = len(getattr(connector, "_acquired", ()))
        idle = sum(len(v) for v in getattr(connector, "_conns", {}).values())
        return acquired, idle

    def _timeout(self, read: float | None) -> aiohttp.ClientTimeout:
        if read is None:
            return self._default_timeout
        return aiohttp.ClientTimeout(
            total=self.timeouts.total,
            sock_connect=self.timeouts.connect,
            sock_read=read,
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        form: Sequence[FormField] | None = None,
        read_timeout: float | None = None,
    ) -> Response:
        """Send one request and read the whole reply.

        ``form`` sends a multipart body whose file parts stream from their source in
        chunks (aiohttp reads file objects in a thread), never whole in memory.
        """
        session = self._get_session()
        body: bytes | aiohttp.FormData | None = data
        opened: list[BinaryIO] = []
        if form is not None:
            body = aiohttp.FormData()
            for field in form:
                value = field.value
                if isinstance(value, Path):
                    value = value.open("rb")
                    opened.append(value)
                body.add_field(
                    field.name, value, filename=field.filename, content_type=field.content_type
                )
        try:
            async with session.request(
                method,
                url,
                headers={"User-Agent": self._user_agent, **headers},
                data=body,
                timeout=self._timeout(read_timeout),
                allow_redirects=False,
            ) as resp:
                reply = await resp.read()
                return Response(resp.status, resp.reason, resp.headers, reply, method, url)
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
            raise _map(exc, method, url, sent=True) from exc
        finally:
            for handle in opened:
                handle.close()

    async def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        read_timeout: float | None = None,
    ) -> StreamingBody:
        """Send a request and return as soon as the headers are in; the body streams."""
        session = self._get_session()
        try:
            resp = await session.request(
                method,
                url,
                headers={"User-Agent": self._user_agent, **headers},
                timeout=self._timeout(read_timeout),
                allow_redirects=True,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError) as exc:
            raise _map(exc, method, url, sent=True) from exc
        return StreamingBody(resp, method, url)

    async def aclose(self) -> None:
        """Close the pool (only if we created it). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
