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
import functools
import hashlib
import os
import ssl
import stat
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NoReturn, TypeVar

import aiohttp
import attrs
from aiohttp.client_reqrep import ClientRequest
from aiohttp.tracing import Trace
from multidict import CIMultiDictProxy

from ._aiter import AsyncClosing
from ._trust import authorities
from .errors import (
    ClientClosedError,
    ConnectError,
    ConnectionLostError,
    MalformedResponseError,
    RequestTimeoutError,
    TransportError,
)
from .protocol.checks import seconds, seconds_or_none
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
    "default_ssl_context",
    "spawn_detached",
]


@attrs.frozen(kw_only=True)
class Timeouts:
    """Network timeouts in seconds: every wait has one.

    ``connect``: to open a connection. ``read``: the longest silence within a reply.
    ``total``: one API call's attempt, from sending to the last byte of its reply (a
    server dripping a byte a second ends here); a create sent with ``Prefer: wait=N``
    gets ``N + wait_margin`` at least for both, since the server holds it open.
    ``progress``: downloads and event streams have no total (they may last an hour),
    but end (and resume) when this long passes without progress: bytes of substance
    for a download, events (not comments) for a stream.
    """

    connect: float = attrs.field(default=10.0, validator=seconds)
    read: float = attrs.field(default=30.0, validator=seconds)
    total: float | None = attrs.field(default=90.0, validator=seconds_or_none)
    wait_margin: float = attrs.field(default=15.0, validator=seconds)
    progress: float = attrs.field(default=30.0, validator=seconds)


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

#: the largest API reply read (a models list page is about 2 MB)
MAX_REPLY_SIZE = 16 * 1024 * 1024
#: the largest error body read from a download or stream host
ERROR_BODY_LIMIT = 64 * 1024


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, method: str, url: str) -> bytes:
    """The whole body, refused (before it is all read) when over ``limit`` bytes."""
    length = resp.content_length
    if length is not None and length <= limit:
        return await resp.read()  # the common case: aiohttp's own fast path
    if length is not None:
        raise MalformedResponseError(
            f"{method} {url}: the reply is {length:,} bytes, over the {limit:,} this client "
            "reads (AsyncReplicate(max_reply_size=...)); not read.",
            method=method,
            url=url,
        )
    parts: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise MalformedResponseError(
                f"{method} {url}: the reply went on past {limit:,} bytes, over what this "
                "client reads (AsyncReplicate(max_reply_size=...)); stopped.",
                method=method,
                url=url,
            )
        parts.append(chunk)
    return b"".join(parts)


def _open_regular(path: Path) -> BinaryIO:
    handle = path.open("rb")
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise ValueError(f"file input {str(path)!r} is no longer a regular file; not sent")
    return handle


def _translate(exc: BaseException, method: str, url: str) -> TransportError:
    """Our error for an aiohttp / asyncio failure of ``method url``."""
    where = f"{method} {url}"
    kw: dict[str, Any] = {"method": method, "url": url}
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connect_timeout is not None and isinstance(exc, connect_timeout):
        return ConnectError(f"{where}: timed out connecting. Check the network and base_url.", **kw)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ConnectError(
            f"{where}: the host's certificate is not trusted ({exc.certificate_error}). "
            "For an emulator in another process, trust its authority: "
            "AsyncReplicate(ssl=ssl.create_default_context(cafile=<its ca_file>)), or "
            "SSL_CERT_FILE=<its ca_bundle> before the client is made.",
            **kw,
        )
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
    """Catches aiohttp's and asyncio's exceptions in its block; ``fail()`` raises ours.

    ::

        mapped = _MappedErrors(method, url)
        with mapped:
            return await ...  # the work
        mapped.fail()  # reached only if the block failed

    Ours is raised *outside* the block, so it carries no ``__context__`` and no
    ``__cause__``: aiohttp's exception (whose ``request_info`` holds the request's
    headers, the Authorization header among them) is dropped, its words kept. A class
    rather than ``@contextmanager``: it runs around every request, and a generator-based
    manager costs a few times more.
    """

    __slots__ = ("error", "method", "url")

    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url
        self.error: TransportError | None = None

    def __enter__(self) -> _MappedErrors:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is not None and isinstance(exc, _FOREIGN):
            self.error = _translate(exc, self.method, self.url)
            return True  # suppressed here, raised by fail() outside the handler
        return False

    def fail(self) -> NoReturn:
        """Raise the translated error (after the block swallowed aiohttp's)."""
        assert self.error is not None, "fail() follows a block that failed"
        raise self.error


class StreamingBody(AsyncClosing):
    """A reply whose body is read in chunks; close it (or use ``async with``) when done."""

    __slots__ = ("_method", "_resp", "_rest", "_url")

    def __init__(self, resp: aiohttp.ClientResponse, method: str, url: str) -> None:
        self._resp = resp
        self._method = method
        self._url = url
        self._rest = b""  # what was left of a chunk bigger than the reader asked for

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

    async def read(self, limit: int = ERROR_BODY_LIMIT) -> bytes:
        """The rest of the body, at most ``limit`` bytes (for error replies: small)."""
        mapped = _MappedErrors(self._method, self._url)
        with mapped:
            return await _read_capped(self._resp, limit, self._method, self._url)
        mapped.fail()

    async def read_chunk(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body as they arrive; b"" at its end.

        The bytes come as the socket delivered them, not copied into one piece:
        ``content.read(n)`` joins the buffered pieces into a new ``n``-byte object, and
        at a download's speed that copy (and the fresh memory it needs) cost half the
        throughput. A piece bigger than ``size`` is split, and its rest kept for the
        next call.
        """
        data = self._rest
        if not data:
            mapped = _MappedErrors(self._method, self._url)
            with mapped:
                content = self._resp.content
                while True:
                    data, end_of_http_chunk = await content.readchunk()
                    # b"" with True is only the boundary of an HTTP chunk, not the end.
                    if data or not end_of_http_chunk:
                        break
            if mapped.error is not None:
                mapped.fail()
        if len(data) > size:
            self._rest = data[size:]
            return data[:size]
        self._rest = b""
        return data

    async def read_any(self) -> bytes:
        """The next bytes that arrive, as soon as any do; b"" at the end of the body."""
        mapped = _MappedErrors(self._method, self._url)
        with mapped:
            return await self._resp.content.readany()
        mapped.fail()

    @property
    def content_length(self) -> int | None:
        """The ``Content-Length`` the server stated (of the encoded body, if encoded)."""
        return self._resp.content_length

    @property
    def chunked(self) -> bool:
        """Whether the body is framed by chunked encoding (its end is then provable)."""
        return "chunked" in self._resp.headers.get("Transfer-Encoding", "").lower()

    @property
    def encoded(self) -> bool:
        """Whether aiohttp decodes a Content-Encoding (then ranges are not byte offsets)."""
        encoding = self._resp.headers.get("Content-Encoding", "identity").lower()
        return encoding not in ("", "identity")

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


def default_ssl_context() -> ssl.SSLContext:
    """The system's trust, as ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` say now.

    OpenSSL reads those variables when a context loads its default paths; aiohttp builds
    its default context once, when it is imported, so a test that points
    ``SSL_CERT_FILE`` at a bundle with the emulator's authority (the pytest plugin
    does) would not be heard. Contexts are shared by what they trust: loading the
    system's authorities costs tens of milliseconds, which a test suite making a client
    per test should pay once.
    """
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    digest = ""
    if cafile is not None:
        with contextlib.suppress(OSError):
            digest = hashlib.sha256(Path(cafile).read_bytes()).hexdigest()
    return _ssl_context(cafile, capath, digest, authorities())


@functools.lru_cache(maxsize=8)
def _ssl_context(
    cafile: str | None, capath: str | None, digest: str, own: tuple[str, ...]
) -> ssl.SSLContext:
    # ``digest`` is only the cache key: a file rewritten with other authorities is reloaded.
    context = ssl.create_default_context()
    for pem in own:  # an in-process emulator's (see _trust)
        context.load_verify_locations(cadata=pem)
    return context


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
        max_reply_size: int = MAX_REPLY_SIZE,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.max_reply_size = max_reply_size
        if session is not None and ssl_context is not None:
            raise ValueError(
                "pass ssl= or session=, not both: your own session's connector decides TLS "
                "(aiohttp.TCPConnector(ssl=context))"
            )
        # Built now, not at aiohttp's import: SSL_CERT_FILE set after that still counts.
        self._ssl = ssl_context or default_ssl_context()
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
                ssl=self._ssl,
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

    def _timeout(self, read: float | None, total: float | None) -> aiohttp.ClientTimeout:
        if read is None and total == self.timeouts.total:
            return self._default_timeout
        return aiohttp.ClientTimeout(
            total=total,
            sock_connect=self.timeouts.connect,
            sock_read=self.timeouts.read if read is None else read,
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
        total: float | None = None,
    ) -> Response:
        """Send one request and read the whole reply (at most ``max_reply_size`` bytes).

        ``form`` sends a multipart body whose file parts stream from their source in
        chunks (aiohttp reads file objects in a thread), never whole in memory.
        ``total`` bounds the whole attempt (default: ``Timeouts.total``).
        """
        if total is None:
            total = self.timeouts.total
        session = self._get_session()
        body: bytes | aiohttp.FormData | None = data
        opened: list[BinaryIO] = []
        mapped = _MappedErrors(method, url)
        try:
            if form is not None:
                body = aiohttp.FormData()
                for field in form:
                    value = field.value
                    if isinstance(value, Path):
                        # Opened in a thread: were it swapped for a FIFO since it was
                        # checked, opening would block the loop.
                        value = await asyncio.to_thread(_open_regular, value)
                        opened.append(value)
                    body.add_field(
                        field.name, value, filename=field.filename, content_type=field.content_type
                    )
            with mapped:
                async with session.request(
                    method,
                    url,
                    headers={"User-Agent": self._user_agent, **headers},
                    data=body,
                    timeout=self._timeout(read_timeout, total),
                    allow_redirects=False,
                ) as resp:
                    reply = await _read_capped(resp, self.max_reply_size, method, url)
                    return Response(resp.status, resp.reason, resp.headers, reply, method, url)
        finally:
            for handle in opened:
                handle.close()
        mapped.fail()

    async def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        read_timeout: float | None = None,
        buffer: int | None = None,
    ) -> StreamingBody:
        """Send a request and return as soon as the headers are in; the body streams.

        ``buffer`` is how far (in bytes) the socket is read ahead of the reader before
        it pauses; aiohttp's default, 64 KiB, pauses and resumes a fast download every
        chunk, and each pause and resume is a system call. Memory holds up to twice it.
        """
        session = self._get_session()
        mapped = _MappedErrors(method, url)
        extra: dict[str, Any] = {} if buffer is None else {"read_bufsize": buffer}
        with mapped:
            resp = await session.request(
                method,
                url,
                headers={"User-Agent": self._user_agent, **headers},
                # No overall deadline (a download may take an hour); the readers watch
                # for progress instead.
                timeout=self._timeout(read_timeout, None),
                allow_redirects=True,
                **extra,
            )
            return StreamingBody(resp, method, url)
        mapped.fail()

    async def aclose(self) -> None:
        """Close the pool (only if we created it). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
