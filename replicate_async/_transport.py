"""The only module that touches aiohttp: the pool, timeouts, bodies, exception mapping.

Everything above it sees :class:`~.protocol.replies.Response` (a fully read reply) or
:class:`StreamingBody` (a reply read in chunks), and our own errors: aiohttp's and
asyncio's exceptions are mapped to ours in one place, :class:`_MappedErrors` (httpx's
``map_httpcore_exceptions`` is the model), so users never import aiohttp to catch one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

import aiohttp
import attrs
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace
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
from .protocol.replies import Response

T = TypeVar("T")

__all__ = [
    "Connections",
    "FormField",
    "HoldsBody",
    "Response",
    "StreamingBody",
    "Timeouts",
    "Transport",
    "spawn_detached",
]


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


_FOREIGN = (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError)


def _translate(exc: BaseException, method: str, url: str) -> TransportError:
    """Our error for an aiohttp / asyncio failure of ``method url``."""
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
    return ConnectionLostError(
        f"{where}: the connection was lost ({type(exc).__name__}: {exc}).", **kw
    )


class _MappedErrors:
    """Re-raise aiohttp's and asyncio's exceptions inside the block as ours.

    A class rather than ``@contextmanager``: it runs around every request, and a
    generator-based manager costs a few times more.
    """

    __slots__ = ("method", "url")

    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and isinstance(exc, _FOREIGN):
            raise _translate(exc, self.method, self.url) from exc


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
        with _MappedErrors(self._method, self._url):
            return await self._resp.read()

    async def read_chunk(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body as they arrive; b"" at its end."""
        with _MappedErrors(self._method, self._url):
            return await self._resp.content.read(size)

    async def read_any(self) -> bytes:
        """The next bytes that arrive, as soon as any do; b"" at the end of the body."""
        with _MappedErrors(self._method, self._url):
            return await self._resp.content.readany()

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


class Connections:
    """The connections opened by the tasks of one piece of work, closable from sync code.

    ``run_many`` starts its tasks under one; when its iterator is dropped mid-loop (a
    bare ``break``), ``__del__`` cannot await anything, but it can close every
    connection its tasks hold, so the pool has them back before the next statement runs.
    """

    __slots__ = ("__weakref__", "_open")

    def __init__(self) -> None:
        self._open: weakref.WeakSet[aiohttp.connector.Connection] = weakref.WeakSet()

    def add(self, connection: aiohttp.connector.Connection) -> None:
        """Track a connection a task of this work just got from the pool."""
        self._open.add(connection)

    def close_all(self) -> None:
        """Close every connection still held (an unfinished reply cannot go back to the pool)."""
        for connection in list(self._open):
            connection.close()
        self._open.clear()

    def bind(self) -> contextvars.Token[Connections | None]:
        """Make tasks created from now on (in this context) report here; undo with the token."""
        return _CURRENT_WORK.set(self)

    @staticmethod
    def unbind(token: contextvars.Token[Connections | None]) -> None:
        """Stop reporting here (tasks already created keep reporting)."""
        _CURRENT_WORK.reset(token)


# A task inherits the context it was created in: the work it belongs to travels with it.
_CURRENT_WORK: contextvars.ContextVar[Connections | None] = contextvars.ContextVar(
    "replicate_async_work", default=None
)


def spawn_detached(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task of the client's own (poller, clean-up), belonging to no job.

    Created from inside a ``run_many`` task it would inherit that job's
    :class:`Connections`, and closing the job would cut its requests in the air.
    """
    token = _CURRENT_WORK.set(None)
    try:
        return asyncio.get_running_loop().create_task(work)
    finally:
        _CURRENT_WORK.reset(token)


class _Connector(aiohttp.TCPConnector):
    """A TCPConnector that tells the current task's :class:`Connections` what it hands out."""

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        work = _CURRENT_WORK.get()
        if work is not None:
            work.add(connection)
        return connection


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
            connector = _Connector(
                limit=self._max_connections,
                limit_per_host=0,
                keepalive_timeout=30.0,
                ttl_dns_cache=300,
            )
            # We read bodies ourselves; aiohttp's raise_for_status stays off.
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
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
            total=self.timeouts.total, sock_connect=self.timeouts.connect, sock_read=read
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
            with _MappedErrors(method, url):
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
        with _MappedErrors(method, url):
            resp = await session.request(
                method,
                url,
                headers={"User-Agent": self._user_agent, **headers},
                timeout=self._timeout(read_timeout),
                allow_redirects=True,
            )
        return StreamingBody(resp, method, url)

    async def aclose(self) -> None:
        """Close the pool (only if we created it). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
