"""The emulator's files: the ``/v1/files`` API, and the delivery host for outputs.

Uploads are streamed to a temporary directory (hashed on the way, never held in memory)
with the limit, checksums and 24-hour expiry Replicate reports. Output files are
generated from a seed as they are downloaded, so a 1 GiB output costs no memory; the
delivery host answers ranges with 206 and can be told to cut a body short, to ignore
ranges, or to forget every file (as an hour after a prediction).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import BodyPartReader, web

if TYPE_CHECKING:
    from ._app import ApiState

__all__ = ["Upload", "UploadStore", "add_file_routes", "build_delivery_app", "pattern_chunks"]

_BLOCK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _pattern(seed: int) -> bytes:
    return hashlib.sha256(seed.to_bytes(8, "big")).digest() * (_BLOCK // 32)


def pattern_chunks(seed: int, size: int, start: int = 0, chunk: int = _BLOCK) -> Iterator[bytes]:
    """Bytes ``start`` to ``size`` of a generated file, a chunk at a time.

    Byte ``i`` is ``pattern[i % 64 KiB]``: any range can be produced without the rest.
    """
    block = _pattern(seed)
    doubled = block + block
    at = start
    while at < size:
        n = min(chunk, size - at, _BLOCK)
        offset = at % _BLOCK
        yield doubled[offset : offset + n]
        at += n


@attrs.define(kw_only=True)
class Upload:
    """A file uploaded through ``POST /v1/files``."""

    id: str
    path: Path
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str
    metadata: dict[str, Any]
    token: str
    created_at: datetime

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The file as the API returns it."""
        created = self.created_at
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": _ts(created),
            "expires_at": _ts(created + timedelta(hours=24)),
            "urls": {"get": f"{base_url}/files/{self.id}"},
        }


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class UploadStore:
    """Uploaded files on disk, in a directory removed when the emulator stops."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.files: dict[str, Upload] = {}
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def directory(self) -> Path:
        """Where uploads are kept (made on first use)."""
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="replicate-emulator-")
        return Path(self._dir.name)

    def close(self) -> None:
        """Delete every upload."""
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self.files.clear()

    def resolve(self, value: str) -> Upload | None:
        """The upload a ``.../v1/files/{id}`` URL points at, if any."""
        match = re.search(r"/v1/files/([A-Za-z0-9_-]+)$", value)
        return self.files.get(match.group(1)) if match else None


def _problem(status: int, detail: str, title: str | None = None) -> web.Response:
    from ._app import problem

    return problem(status, detail, title)


async def create_file(request: web.Request) -> web.StreamResponse:
    """``POST /v1/files``: multipart ``content`` (+ ``filename``, ``type``, ``metadata``)."""
    from ._app import STATE, _base, _json, _token

    state = request.app[STATE]
    uploads = state.uploads
    if not request.content_type.startswith("multipart/"):
        return _problem(400, "Send the file as multipart/form-data with a 'content' part.")
    fields: dict[str, str] = {}
    stored: tuple[Path, int, str, str, str | None, str | None] | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "content":
            target = uploads.directory / secrets.token_hex(8)
            sha256, md5_hash, size = hashlib.sha256(), hashlib.md5(), 0
            with target.open("wb") as out:
                while chunk := await part.read_chunk(256 * 1024):
                    size += len(chunk)
                    if size > uploads.max_size:
                        out.close()
                        target.unlink()
                        limit = uploads.max_size // (1024 * 1024)
                        return _problem(
                            413,
                            f"The file is larger than the maximum size of {limit} MB.",
                            "Payload Too Large",
                        )
                    sha256.update(chunk)
                    md5_hash.update(chunk)
                    out.write(chunk)
            stored = (
                target,
                size,
                sha256.hexdigest(),
                md5_hash.hexdigest(),
                part.filename,
                part.headers.get("Content-Type"),
            )
        else:
            fields[part.name or ""] = await part.text()
    if stored is None:
        return _problem(422, "- content: content is required\n", "Input validation failed")
    path, size, sha, md5, part_name, part_type = stored
    try:
        metadata = _json_object(fields.get("metadata"))
    except ValueError:
        path.unlink()
        return _problem(422, "- metadata: must be a JSON object\n", "Input validation failed")
    upload = Upload(
        id=secrets.token_urlsafe(24).replace("-", "A").replace("_", "B"),
        path=path,
        name=fields.get("filename") or part_name or "file",
        content_type=fields.get("type") or part_type or "application/octet-stream",
        size=size,
        sha256=sha,
        md5=md5,
        metadata=metadata,
        token=_token(request),
        created_at=datetime.now(timezone.utc),
    )
    uploads.files[upload.id] = upload
    return _json(upload.to_json(_base(request)), 201)


def _json_object(text: str | None) -> dict[str, Any]:
    import json

    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _upload(request: web.Request) -> Upload | None:
    from ._app import STATE, _token

    upload = request.app[STATE].uploads.files.get(request.match_info["file_id"])
    return upload if upload is not None and upload.token == _token(request) else None


async def get_file(request: web.Request) -> web.StreamResponse:
    from ._app import _base, _json, _not_found

    upload = _upload(request)
    return _not_found() if upload is None else _json(upload.to_json(_base(request)))


async def delete_file(request: web.Request) -> web.StreamResponse:
    from ._app import STATE, _not_found

    upload = _upload(request)
    if upload is None:
        return _not_found()
    del request.app[STATE].uploads.files[upload.id]
    upload.path.unlink(missing_ok=True)
    # As recorded: 204, an empty body, text/plain.
    return web.Response(status=204, content_type="text/plain")


async def list_files(request: web.Request) -> web.StreamResponse:
    from ._app import STATE, _base, _page, _token

    token = _token(request)
    uploads = [u for u in request.app[STATE].uploads.files.values() if u.token == token]
    uploads.reverse()  # newest first
    order = {u.id: i for i, u in enumerate(uploads)}
    base = _base(request)
    return _page(request, uploads, lambda u: -order[u.id], lambda u: u.to_json(base))


async def download_file(request: web.Request) -> web.StreamResponse:
    upload = _upload(request)
    if upload is None:
        return _problem(404, "Not found.")
    return web.FileResponse(upload.path, headers={"Content-Type": upload.content_type})


def add_file_routes(app: web.Application) -> None:
    """The ``/v1/files`` routes of the API app."""
    r = app.router
    r.add_post("/v1/files", create_file)
    r.add_get("/v1/files", list_files)
    r.add_get("/v1/files/{file_id}", get_file)
    r.add_delete("/v1/files/{file_id}", delete_file)
    r.add_get("/v1/files/{file_id}/download", download_file)


# -- the delivery host -------------------------------------------------------------------


@attrs.define(kw_only=True)
class DeliveryFaults:
    """How the delivery host misbehaves, for download tests."""

    #: cut the next bodies after this many bytes (one entry per body)
    cuts: list[int] = attrs.field(factory=list)
    #: answer range requests with the whole file (200), as a server without ranges does
    ignore_ranges: bool = False
    #: every output file is gone (404), as an hour after the prediction
    expired: bool = False


async def deliver(request: web.Request) -> web.StreamResponse:
    """``GET /{key}/{name}``: an output file, with ranges."""
    from ._app import STATE

    state = request.app[STATE]
    # Recorded so tests can prove the API token never reaches this host.
    state.delivery_headers.append(dict(request.headers))
    faults = state.delivery_faults
    published = state.store.files.get(request.match_info["key"])
    if published is None or published.name != request.match_info["name"] or faults.expired:
        return web.Response(status=404, text="Not Found")
    size = published.size
    etag = f'"{published.seed:x}-{size:x}"'
    start, end, status = 0, size - 1, 200
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted and not faults.ignore_ranges and (if_range is None or if_range == etag):
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
    cut = faults.cuts.pop(0) if faults.cuts else None
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


def build_delivery_app(state: ApiState) -> web.Application:
    """The file host (``replicate.delivery`` stand-in)."""
    from ._app import side_app

    return side_app(state, {"/{key}/{name}": deliver})


def file_digest(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, sha256) of a file on disk, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(1024 * 1024):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()
