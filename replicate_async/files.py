"""File outputs: ``FileOutput`` handles that download lazily, in chunks, to disk with aiofiles.

A download never carries the API token: output files live on other hosts
(``replicate.delivery``) that need none. ``data:`` URIs are decoded without a request.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import aiofiles
import aiofiles.os
import attrs

from ._transport import Transport
from .errors import ConnectionLostError, NotFoundError, error_from_response

__all__ = ["DEFAULT_CHUNK_SIZE", "FileOutput", "SavedFile", "decode_output", "is_file_url"]

DEFAULT_CHUNK_SIZE = 256 * 1024

_DATA_URI = re.compile(r"^data:(?P<type>[^,;]*)(?P<params>(?:;[^,;]*)*),(?P<data>.*)$", re.DOTALL)


def is_file_url(value: str) -> bool:
    """True for strings ``run()`` turns into :class:`FileOutput`: http(s) URLs and data URIs."""
    return value.startswith(("https://", "http://", "data:"))


def _decode_data_uri(uri: str) -> tuple[str, bytes]:
    match = _DATA_URI.match(uri)
    if match is None:
        raise ValueError("malformed data: URI (expected data:[<type>][;base64],<data>)")
    params = match.group("params").split(";")
    data = match.group("data")
    if "base64" in params:
        return match.group("type"), base64.b64decode(data)
    return match.group("type"), unquote_to_bytes(data)


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

    __slots__ = ("_transport", "chunk_size", "url")

    def __init__(
        self, url: str, transport: Transport, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        self.url = url
        self._transport = transport
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
            return _decode_data_uri(self.url)[0] or None
        return None

    async def read(self) -> bytes:
        """Download and return all the bytes. For big files, iterate or ``save()`` instead."""
        return b"".join([chunk async for chunk in self])

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self.url.startswith("data:"):
            _, data = _decode_data_uri(self.url)
            for start in range(0, len(data), self.chunk_size):
                yield data[start : start + self.chunk_size]
            return
        # No Authorization header: the token goes to the API's origin only.
        async with await self._transport.open("GET", self.url, headers={}) as body:
            if body.status >= 400:
                error = error_from_response(
                    "GET", self.url, body.status, body.reason, await body.read()
                )
                if body.status in (404, 410):
                    raise NotFoundError(
                        f"GET {self.url} failed with {body.status}: the file is gone. "
                        "Prediction outputs expire an hour after the prediction finishes; "
                        "run it again, or save outputs sooner.",
                        status=body.status,
                        method="GET",
                        url=self.url,
                    ) from error
                raise error
            expected = body.headers.get("Content-Length")
            received = 0
            async for chunk in body.iter_chunks(self.chunk_size):
                received += len(chunk)
                yield chunk
            if expected is not None and expected.isdigit() and received != int(expected):
                raise ConnectionLostError(
                    f"GET {self.url}: download cut short at {received} of {expected} bytes; "
                    "try again.",
                    method="GET",
                    url=self.url,
                )

    async def save(self, path: str | os.PathLike[str]) -> SavedFile:
        """Write the file to ``path`` atomically and return where and how big.

        Bytes go to a temporary file in the same directory, renamed into place only when
        the download is complete: no half-written file ever carries the final name.
        """
        target = Path(path)
        directory = target.parent
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
        os.close(fd)
        size = 0
        try:
            async with aiofiles.open(temp_name, "wb") as out:
                async for chunk in self:
                    await out.write(chunk)
                    size += len(chunk)
            await aiofiles.os.replace(temp_name, target)
        except BaseException:
            # Covers cancellation too: never leave the temp file behind.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        return SavedFile(target, size)


def decode_output(value: Any, transport: Transport) -> Any:
    """Turn every URL or data URI in an output (at any depth) into a :class:`FileOutput`."""
    if isinstance(value, str):
        return FileOutput(value, transport) if is_file_url(value) else value
    if isinstance(value, list):
        return [decode_output(item, transport) for item in value]
    if isinstance(value, dict):
        return {key: decode_output(item, transport) for key, item in value.items()}
    return value
