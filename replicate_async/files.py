"""Files: outputs downloaded as ``FileOutput`` handles, and local files sent as inputs.

Downloads stream in chunks (to disk in large batches, off the event loop), resume a cut
body with a ``Range`` request, and never carry the API token: outputs live on other
hosts that need none. ``data:`` URIs are decoded without a request. File inputs (paths,
bytes, binary file objects, aiofiles handles, at any depth of an input) are uploaded
through ``POST /files`` and replaced by their URL, or inlined as ``data:`` URIs; this
is the only step that reads local files.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import io
import json
import mimetypes
import os
import re
import secrets
import stat
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote_to_bytes

import aiofiles
import aiofiles.os
import attrs

from ._sink import FileSink, in_writer, read_ahead
from ._transport import FormField, HoldsBody
from .errors import (
    ConnectionLostError,
    MalformedResponseError,
    NotFoundError,
    PayloadTooLargeError,
    ReplicateError,
    TransportError,
    error_from_response,
)
from .protocol.replies import parse_retry_after
from .protocol.retry import backoff
from .protocol.schema import OutputPlan
from .types import File

if TYPE_CHECKING:
    from ._session import Session

__all__ = [
    "DATA_URI_LIMIT",
    "DEFAULT_CHUNK_SIZE",
    "MAX_UPLOAD_SIZE",
    "FileInput",
    "FileOutput",
    "SavedFile",
    "decode_data_uri",
    "decode_output",
    "is_file_url",
    "prepare_input",
    "upload_file",
]

#: bytes per read when downloading; memory per download stays near this
DEFAULT_CHUNK_SIZE = 1024 * 1024
#: Replicate's limit for one uploaded file
MAX_UPLOAD_SIZE = 100 * 1024 * 1024
#: the default largest file inlined with file_encoding="data-uri"
DATA_URI_LIMIT = 1024 * 1024
#: bytes a download reads from its socket ahead of the disk (memory holds up to twice;
#: saves running at once share a budget, see _sink.read_ahead)
_READ_AHEAD = 1024 * 1024
#: reconnections to finish one cut download
MAX_RESUMES = 5
#: the backoff between them, first and largest (the library's one formula, retry.backoff)
_RESUME_BACKOFF = (0.05, 2.0)
#: answers from a file host worth coming back after (the file is still there)
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
#: the longest Retry-After a download waits for
_MAX_SERVER_DELAY = 60.0
#: a download makes progress when this many more bytes arrived (a drip does not)
_PROGRESS_BYTES = 64 * 1024
#: file inputs up to this size (by stat) are read whole while checking: their size is
#: then what they hold, not what stat claims
_SMALL_FILE = 64 * 1024

_DATA_URI = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.DOTALL)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


#: what a string that ``run()`` turns into a :class:`FileOutput` starts with
FILE_URL_PREFIXES = ("https://", "http://", "data:")


def is_file_url(value: str) -> bool:
    """True for strings ``run()`` turns into :class:`FileOutput`: http(s) URLs and data URIs."""
    return value.startswith(FILE_URL_PREFIXES)


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """(media type, bytes) of a ``data:`` URI; a malformed one is a ``ValueError``."""
    match = _DATA_URI.match(uri)
    if match is None:
        raise ValueError(
            f"malformed data: URI {uri[:40]!r}: expected data:[<type>][;base64],<data>"
        )
    params = match.group("params").split(";")
    data = match.group("data")
    if "base64" not in params:
        return match.group("type"), unquote_to_bytes(data)
    # Strict: a lenient decoder drops what is not base64 and hands back b"" or garbage.
    text = unquote_to_bytes(data) if "%" in data else data.encode("ascii", "replace")
    text = b"".join(text.split())
    text += b"=" * (-len(text) % 4)  # missing padding is unambiguous; anything else is not
    try:
        return match.group("type"), base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error is one
        raise ValueError(
            f"malformed data: URI {uri[:40]!r}: its data is not valid base64"
        ) from None


@attrs.frozen
class SavedFile:
    """Where ``FileOutput.save`` put the file and how many bytes it wrote."""

    path: Path
    size: int


class FileOutput:
    """A file a prediction produced. Nothing is downloaded until you ask.

    Each ``read()`` or iteration fetches again, so the handle can be read more than once
    (while the URL lives: outputs expire an hour after the prediction finishes).
    """

    __slots__ = ("_session", "chunk_size", "url")

    def __init__(self, url: str, session: Session, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.url = url
        self._session = session
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        shown = self.url if len(self.url) <= 80 else self.url[:60] + "…"
        return f"FileOutput({shown!r})"

    def __str__(self) -> str:
        return self.url

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileOutput) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def content_type(self) -> str | None:
        """The media type of a ``data:`` URI; None for URLs (the server says on download)."""
        if self.url.startswith("data:"):
            return decode_data_uri(self.url)[0] or None
        return None

    async def read(self) -> bytes:
        """Download and return all the bytes. For big files, iterate or ``save()`` instead."""
        return b"".join([chunk async for chunk in self.chunks()])

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    def chunks(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The bytes in chunks of at most ``chunk_size``, resuming a cut download."""
        return self._chunks(chunk_size, restartable=False)

    def _chunks(
        self, chunk_size: int | None, *, restartable: bool
    ) -> _Download | AsyncGenerator[bytes, None]:
        size = chunk_size or self.chunk_size
        if self.url.startswith("data:"):
            return _data_chunks(self.url, size)
        return _Download(self.url, self._session, size, restartable=restartable)

    async def save(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_size: int | None = None,
        progress: Callable[[int, int | None], object] | None = None,
    ) -> SavedFile:
        """Write the file to ``path`` atomically and return where and how big.

        Bytes go to a temporary file in the same directory, renamed into place only when
        the download is complete: no half-written file ever carries the final name, and
        a failed download leaves nothing behind. ``progress(done, total)`` hears the
        bytes written so far and the file's size (None when the server does not say).
        """
        target = Path(path)
        temp_name = target.parent / f".{target.name}.{secrets.token_hex(6)}.part"
        # Created exclusively (O_EXCL, not mkstemp and then a reopen with O_TRUNC: ext4
        # flushes a truncated file on close, which cost 15% of throughput).
        out = await FileSink.create(temp_name)
        chunks = self._chunks(chunk_size, restartable=True)
        try:
            generation = 0
            async for chunk in chunks:
                if getattr(chunks, "generation", 0) != generation:
                    # The server sent the file again from its first byte, and nothing
                    # proved it the same file: write it again from the start.
                    generation = getattr(chunks, "generation", 0)
                    await out.restart()
                await out.write(chunk)
                if progress is not None:
                    progress(out.written, getattr(chunks, "total", None))
            await out.close()
            # Only now, with every byte the download proved whole written and the file
            # closed, does it take the final name.
            await in_writer(os.replace, temp_name, target)
        except BaseException:
            # Covers cancellation too: never leave the temp file behind.
            await out.discard()
            raise
        finally:
            await chunks.aclose()
        return SavedFile(target, out.written)


async def _data_chunks(uri: str, size: int) -> AsyncGenerator[bytes, None]:
    _, data = decode_data_uri(uri)
    for start in range(0, len(data), size):
        yield data[start : start + size]


class _Download(HoldsBody):
    """One pass over a file's bytes: resumed where the body was cut, never short.

    The rules (nothing short passes as whole):

    - the file is complete only when its length is known and reached, or the body ended
      cleanly by its framing (``Content-Length`` bodies and chunked ones: aiohttp raises
      on a body cut inside either); a body with neither, ended by closing the
      connection, is asked for more (``Range`` from where it stopped) until the server
      says there is none (416);
    - a cut, a stall (``Timeouts.progress`` seconds without 64 KiB arriving: a server
      dripping a byte a second) or a lost connection resumes with ``Range`` from the
      last byte received; ``If-Range`` carries the file's strong ETag, else its
      ``Last-Modified``, so a changed file comes back whole;
    - a 200 to a ``Range`` request is the same file again only if its validator says
      so (then the bytes already held are skipped); otherwise the file starts over:
      ``save()`` writes it again from the start, and plain iteration raises (the bytes
      it gave out may not belong to this file);
    - downloads ask for ``Accept-Encoding: identity``: byte offsets are then ranges. A
      server that encodes anyway is not resumed by range but started over.

    Class-based rather than a generator so that dropping it (``break``) closes its
    connection at once.
    """

    def __init__(
        self, url: str, session: Session, chunk_size: int, *, restartable: bool = False
    ) -> None:
        self._url = url
        self._session = session
        self._chunk_size = chunk_size
        self._restartable = restartable
        #: bumped when the file starts over (``save()`` then truncates what it wrote)
        self.generation = 0
        self._received = 0  # bytes handed out for the current generation
        self._total: int | None = None
        self._validator: tuple[str, str] | None = None  # ("If-Range" value kind, value)
        self._skip = 0  # bytes to drop: a server that ignored our Range sent them again
        self._framed = False  # the current body's end is provable (length or chunks)
        self._ranged = True  # byte offsets are ranges (no Content-Encoding in the way)
        self._resumes = 0
        self._probes = 0
        self._arrived = 0  # bytes off the wire, skipped ones too: what progress counts
        self._mark = (0.0, 0)  # (when, arrived) at the last progress
        self._stalled = False
        self._done = False

    def __aiter__(self) -> _Download:
        return self

    @property
    def total(self) -> int | None:
        """The file's size, once a reply has said it."""
        return self._total

    async def __anext__(self) -> bytes:
        try:
            while True:
                if self._done:
                    raise StopAsyncIteration
                if self._body is None:
                    await self._open()
                    continue
                try:
                    chunk = await self._body.read_chunk(self._chunk_size)
                except TransportError:
                    await self._resume("cut")  # the connection broke mid-body
                    continue
                if chunk:
                    chunk = self._take(chunk)
                    if chunk:
                        return chunk
                    continue
                await self._ended()
        except BaseException:
            self._close_body()
            raise

    def _take(self, chunk: bytes) -> bytes:
        arrived = len(chunk)
        if self._skip:
            dropped = min(self._skip, len(chunk))
            self._skip -= dropped
            chunk = chunk[dropped:]
        self._received += len(chunk)
        self._check_progress(arrived)
        return chunk

    def _check_progress(self, arrived: int) -> None:
        """Count bytes off the wire; too few for too long is a stall (a drip), resumed."""
        self._arrived += arrived
        now = self._session.timing.monotonic()
        when, at = self._mark
        if self._arrived - at >= _PROGRESS_BYTES:
            self._mark = (now, self._arrived)
            self._resumes = 0  # it is moving: the resume budget is per stall
        elif now - when > self._session.config.timeouts.progress:
            self._close_body()  # resume rather than wait for ever
            self._stalled = True

    async def _ended(self) -> None:
        """The body ended without an error: complete, or more to ask for."""
        self._close_body()
        if self._total is not None:
            if self._received >= self._total:
                self._done = True
            else:
                await self._resume("short")  # fewer bytes than its length said
            return
        if self._framed:
            self._done = True  # the framing said so: a cut would have raised
            return
        # Ended by closing the connection: that is also how a cut looks. Ask for more.
        if self._probes >= MAX_RESUMES:
            raise ConnectionLostError(
                f"GET {self._url}: the server ends the file by closing the connection "
                f"and cannot say whether all of it came ({self._received:,} bytes): "
                "not taken as whole.",
                method="GET",
                url=self._url,
            )
        self._probes += 1

    async def _resume(
        self, why: str, error: ReplicateError | None = None, *, server_delay: float | None = None
    ) -> None:
        """Wait to try again from where the file stopped; raise when out of tries."""
        self._close_body()
        if self._resumes >= MAX_RESUMES:
            if error is not None and not self._received:
                raise error  # nothing came at all: the last error says best why
            of = "" if self._total is None else f" of {self._total:,}"
            raise ConnectionLostError(
                f"GET {self._url}: download {why} at {self._received:,}{of} bytes, "
                f"{self._resumes} times without progress; try again later.",
                method="GET",
                url=self._url,
            )
        self._resumes += 1
        first, cap = _RESUME_BACKOFF
        if server_delay is not None and server_delay > _MAX_SERVER_DELAY:
            assert error is not None
            raise error  # not worth waiting for: say so now
        delay = backoff(self._resumes, initial=first, cap=cap, server_delay=server_delay)
        await self._session.sleep(delay)

    def _restart(self) -> None:
        """The file starts over from its first byte."""
        if not self._restartable and self._received:
            raise ConnectionLostError(
                f"GET {self._url}: the server sent the file again from the start, and "
                "nothing proves it is the same file: the bytes given out so far may not "
                "belong to it. Read it again (save() starts over by itself).",
                method="GET",
                url=self._url,
            )
        self.generation += 1
        self._received = self._skip = 0
        self._total = None

    async def _open(self) -> None:
        if self._stalled:
            self._stalled = False
            await self._resume("stalled")
        headers = {"Accept-Encoding": "identity"}
        resuming = self._received > 0 and self._ranged
        if resuming:
            headers["Range"] = f"bytes={self._received}-"
            if self._validator is not None:
                # The same file, or the whole of the new one.
                headers["If-Range"] = self._validator[1]
        elif self._received:
            self._restart()  # an encoded body cannot be resumed by range
        try:
            buffer = read_ahead(_READ_AHEAD)
            body = await self._session.open(self._url, headers=headers, buffer=buffer)
        except TransportError as error:
            await self._resume("unreachable", error)
            return
        # Held from here, so that whatever is raised below closes it (__anext__ does).
        self._body = body
        self._mark = (self._session.timing.monotonic(), self._arrived)
        status = body.status
        if status == 416 and resuming:
            self._close_body()
            if _range_total(body.headers.get("Content-Range", "")) == self._received:
                self._done = True  # asked for more, and there is none: it was whole
                return
            raise ConnectionLostError(
                f"GET {self._url}: the server refused to resume at byte {self._received:,} "
                f"({body.headers.get('Content-Range')!r}).",
                method="GET",
                url=self._url,
            )
        if status >= 400:
            reply = await body.read()
            self._close_body()
            answer = error_from_response("GET", self._url, status, body.reason, reply)
            if status in _TRANSIENT:
                # Busy or briefly broken: the file is still there, come back for it.
                delay = parse_retry_after(body.headers, None, self._session.timing.wall())
                await self._resume(f"answered {status}", answer, server_delay=delay)
                return
            _raise_download_error(self._url, status, answer)
        validator = _validator(body.headers)
        if status == 206:
            match = _CONTENT_RANGE.match(body.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != self._received:
                self._close_body()
                raise ConnectionLostError(
                    f"GET {self._url}: the server resumed at the wrong place "
                    f"({body.headers.get('Content-Range')!r} for byte {self._received}).",
                    method="GET",
                    url=self._url,
                )
            self._total = None if match.group(3) == "*" else int(match.group(3))
        else:
            if resuming:
                if self._validator is not None and validator == self._validator:
                    # The same file, all of it: drop the bytes already handed out.
                    self._skip = self._received
                else:
                    self._restart()
            self._total = body.content_length if not body.encoded else None
        self._ranged = not body.encoded
        self._framed = body.chunked or body.content_length is not None
        self._validator = validator or self._validator

    async def aclose(self) -> None:
        """Stop and release the connection."""
        self._done = True
        self._close_body()


def _validator(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """What proves a file unchanged: a strong ETag, else Last-Modified (None: nothing)."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return ("etag", etag)
    modified = headers.get("Last-Modified")
    return ("date", modified) if modified else None


def _range_total(content_range: str) -> int | None:
    match = re.match(r"^bytes \*/(\d+)$", content_range.strip())
    return int(match.group(1)) if match else None


def _raise_download_error(url: str, status: int, error: ReplicateError) -> NoReturn:
    if status in (403, 404, 410):
        raise NotFoundError(
            f"GET {url} failed with {status}: the file is gone. Prediction outputs expire "
            "an hour after the prediction finishes; run it again, or save outputs sooner.",
            status=status,
            method="GET",
            url=url,
        ) from error
    raise error


def decode_output(value: Any, session: Session, plan: OutputPlan | None = None) -> Any:
    """Turn the files in an output into :class:`FileOutput`.

    With the version's ``plan`` (its Output schema), exactly where it says ``format:
    uri``; without one, every URL or data URI at any depth.
    """
    if plan is not None:
        return plan.decode(value, lambda url: FileOutput(url, session))
    if isinstance(value, str):
        return FileOutput(value, session) if is_file_url(value) else value
    if isinstance(value, list):
        return [decode_output(item, session) for item in value]
    if isinstance(value, dict):
        return {key: decode_output(item, session) for key, item in value.items()}
    return value


# -- file inputs ---------------------------------------------------------------------------


@attrs.frozen
class FileInput:
    """A local file found in an input, ready to upload or inline.

    ``source`` is a ``Path``, ``bytes``, a binary file object or an aiofiles handle;
    ``start`` is where a file object's reading begins (its position when found).
    """

    source: Any
    name: str
    content_type: str
    size: int
    start: int = 0

    async def read_all(self) -> bytes:
        """The whole content (for data URIs, which are small by construction)."""
        src = self.source
        if isinstance(src, Path):
            async with aiofiles.open(src, "rb") as handle:
                return await handle.read()
        if isinstance(src, bytes):
            return src
        if _is_async_file(src):
            await src.seek(self.start)
            data: bytes = await src.read()
            return data
        src.seek(self.start)
        return bytes(await asyncio.to_thread(src.read))

    async def body(self) -> Any:
        """A value for a multipart part that streams the content from its start."""
        src = self.source
        if isinstance(src, (Path, bytes)):
            return src
        if _is_async_file(src):
            await src.seek(self.start)
            return _async_file_chunks(src)
        src.seek(self.start)
        return src


async def _async_file_chunks(handle: Any) -> AsyncIterator[bytes]:
    while chunk := await handle.read(DEFAULT_CHUNK_SIZE):
        yield chunk


def _is_async_file(value: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(value, "read", None)) and hasattr(value, "seek")


def _guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _kind_of(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _require_regular(mode: int, name: str) -> None:
    """Only regular files are read: a FIFO blocks, a device never ends, a directory fails."""
    if not stat.S_ISREG(mode):
        raise ValueError(
            f"file input {name!r} is {_kind_of(mode)}: only regular files can be sent "
            "(copy its content into a file, or pass bytes). Nothing was sent."
        )


async def _read_small(read: Callable[[int], Awaitable[bytes]], name: str) -> bytes:
    """Read a file that claims to be small: its size is what reading it gives.

    ``/proc`` and ``/sys`` files say 0 or 4096 bytes whatever they hold; a multipart
    part sized by that claim would not match its content.
    """
    parts: list[bytes] = []
    size = 0
    while chunk := await read(DEFAULT_CHUNK_SIZE):
        size += len(chunk)
        if size > MAX_UPLOAD_SIZE:
            raise PayloadTooLargeError(
                f"File {name!r} said it was small but goes on past "
                f"{MAX_UPLOAD_SIZE // (1024 * 1024)} MB. Nothing was sent."
            )
        parts.append(chunk)
    return b"".join(parts)


def looks_like_file(value: Any) -> bool:
    """Whether an input value is a local file the client would upload, untouched.

    A path, bytes, a binary file object or an aiofiles handle.
    """
    if isinstance(value, (str, int, float, bool, list, tuple, dict)) or value is None:
        return False
    if isinstance(value, (os.PathLike, bytes, bytearray, memoryview)):
        return True
    return _is_async_file(value) or isinstance(value, io.IOBase) or hasattr(value, "read")


async def as_file_input(value: Any) -> FileInput | None:
    """A :class:`FileInput` for a file-like input value, None for anything else.

    Checked here, before anything is sent: the file exists, is a regular file (never a
    directory, FIFO or device) and is open in binary mode; its size comes from ``stat``
    for ordinary files and from reading it for small ones (pseudo-files lie in ``stat``).
    """
    if isinstance(value, (str, int, float, bool)) or value is None:
        return None
    if isinstance(value, os.PathLike):
        return await _path_input(Path(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return FileInput(data, "file", "application/octet-stream", len(data))
    if isinstance(value, io.TextIOBase):
        raise TypeError(
            f"file input {getattr(value, 'name', value)!r} is open in text mode; open it in "
            "binary mode ('rb')."
        )
    is_async = _is_async_file(value)
    if not (is_async or isinstance(value, io.IOBase) or hasattr(value, "read")):
        return None
    name = Path(str(getattr(value, "name", "file"))).name
    _check_handle(value, name)
    try:
        if is_async:
            start = await value.tell()
            size = await value.seek(0, os.SEEK_END) - start
            await value.seek(start)
        else:
            start = value.tell()
            size = value.seek(0, os.SEEK_END) - start
            value.seek(start)
    except OSError:
        # Some files cannot seek to their end (/proc): how big they are is what they hold.
        start, size = 0, 0
    if size <= _SMALL_FILE:
        # Small: read it now, so its size is what it holds (and it is read only once).
        if is_async:
            data = await _read_small(value.read, name)
            with contextlib.suppress(OSError):
                await value.seek(start)
        else:
            data = await _read_small(lambda n: asyncio.to_thread(value.read, n), name)
            with contextlib.suppress(OSError):
                value.seek(start)
        return FileInput(data, name, _guess_type(name), len(data))
    return FileInput(value, name, _guess_type(name), size, start)


def _check_handle(value: Any, name: str) -> None:
    """Refuse a file object that is not seekable, or whose descriptor is no regular file.

    Seekable: its size is known before sending, and a retried upload reads it again.
    """
    seekable = getattr(value, "seekable", None)
    if not hasattr(value, "seek") or (callable(seekable) and not _sync_result(seekable)):
        raise ValueError(
            f"file input {name!r} is not seekable (a pipe or a socket?): its size cannot "
            "be known before sending. Read it into bytes first. Nothing was sent."
        )
    fileno = getattr(value, "fileno", None)
    if callable(fileno):
        try:
            descriptor = fileno()
        except (OSError, ValueError):  # io.UnsupportedOperation: BytesIO has no descriptor
            return
        if isinstance(descriptor, int):
            _require_regular(os.fstat(descriptor).st_mode, name)


def _sync_result(method: Callable[[], Any]) -> bool:
    result = method()
    if inspect.isawaitable(result):
        # aiofiles' seekable() is async: close the coroutine, assume seekable (its
        # descriptor is checked next).
        with contextlib.suppress(Exception):
            result.close()  # type: ignore[attr-defined]
        return True
    return bool(result)


async def _path_input(path: Path) -> FileInput:
    shown = str(path)
    try:
        info = await aiofiles.os.stat(path)  # stat does not block on a FIFO; open would
    except FileNotFoundError:
        raise FileNotFoundError(f"file input {shown!r} does not exist") from None
    _require_regular(info.st_mode, shown)
    if info.st_size <= _SMALL_FILE:
        async with aiofiles.open(path, "rb") as handle:
            data = await _read_small(handle.read, shown)
        return FileInput(data, path.name, _guess_type(path.name), len(data))
    return FileInput(path, path.name, _guess_type(path.name), info.st_size)


async def _collect(value: Any, found: list[tuple[Any, FileInput]]) -> None:
    if isinstance(value, Mapping):
        for item in value.values():
            await _collect(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            await _collect(item, found)
    else:
        file = await as_file_input(value)
        if file is not None:
            found.append((value, file))


def _replace(value: Any, done: dict[int, str]) -> Any:
    if isinstance(value, Mapping):
        return {key: _replace(item, done) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace(item, done) for item in value]
    return done.get(id(value), value)


def check_upload_size(file: FileInput) -> None:
    """Refuse a file over Replicate's upload limit, before anything is sent."""
    if file.size > MAX_UPLOAD_SIZE:
        raise PayloadTooLargeError(
            f"File {file.name!r} is {file.size / 1e6:.1f} MB; Replicate takes files up to "
            f"{MAX_UPLOAD_SIZE // (1024 * 1024)} MB. Host it elsewhere and pass its URL "
            "instead. Nothing was sent."
        )


async def prepare_input(
    input: Mapping[str, Any],
    upload: Callable[[FileInput], Awaitable[str]],
    *,
    file_encoding: str = "upload",
    data_uri_limit: int = DATA_URI_LIMIT,
) -> dict[str, Any]:
    """Replace every file in ``input`` (at any depth) by a URL or a data URI.

    Every file is checked first, so a bad one (too big, missing, text mode) stops the
    whole input before anything is sent; then the files are uploaded concurrently.
    """
    found: list[tuple[Any, FileInput]] = []
    await _collect(input, found)
    if not found:
        return dict(input)
    for _, file in found:
        check_upload_size(file)
        if file_encoding == "data-uri" and file.size > data_uri_limit:
            raise ValueError(
                f"File input {file.name!r} is {file.size:,} bytes, over the data URI limit of "
                f"{data_uri_limit:,}; use file_encoding='upload' (the default) or raise "
                "data_uri_limit. Nothing was sent."
            )

    async def convert(file: FileInput) -> str:
        if file_encoding == "upload":
            return await upload(file)
        data = base64.b64encode(await file.read_all()).decode()
        return f"data:{file.content_type};base64,{data}"

    urls = await asyncio.gather(*(convert(file) for _, file in found))
    done = {id(value): url for (value, _), url in zip(found, urls, strict=True)}
    result: dict[str, Any] = _replace(input, done)
    return result


async def upload_file(
    session: Session,
    file: FileInput,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> File:
    """Upload ``file`` through ``POST /files`` as streamed multipart; over 100 MB is refused."""
    check_upload_size(file)
    name = filename or file.name
    kind = content_type or file.content_type
    meta = json.dumps(dict(metadata or {}))

    async def form() -> list[FormField]:
        return [
            FormField("content", await file.body(), filename=name, content_type=kind),
            FormField("filename", name),
            FormField("type", kind),
            FormField("metadata", meta),
        ]

    # Safe to send again: a second upload of the same bytes makes a second file (unused
    # ones expire within a day), never a second prediction.
    return await session.request_json("POST", "/files", File, multipart=form, idempotent=True)


async def upload_url(session: Session, file: FileInput) -> str:
    """Upload a file input and return the URL a model reads it from."""
    uploaded = await upload_file(session, file)
    url = (uploaded.urls or {}).get("get")
    if not url:
        raise MalformedResponseError(f"POST /files: the reply for {file.name!r} has no URL")
    return url
