"""The emulator's ``/v1/files`` API: multipart uploads streamed to disk, list, get, delete.

Uploads are hashed on the way (never held in memory), refused with 413 over the size
limit, and carry the checksums and 24-hour expiry Replicate reports.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from ._http import STATE, base_url, json_reply, not_found, page_of, problem, token_of
from ._uploads import Upload

__all__ = ["add_file_routes"]


async def create_file(request: web.Request) -> web.StreamResponse:
    """``POST /v1/files``: multipart ``content`` (+ ``filename``, ``type``, ``metadata``)."""
    state = request.app[STATE]
    uploads = state.uploads
    if not request.content_type.startswith("multipart/"):
        return problem(400, "Send the file as multipart/form-data with a 'content' part.")
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
                        return problem(
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
        return problem(422, "- content: content is required\n", "Input validation failed")
    path, size, sha, md5, part_name, part_type = stored
    try:
        metadata = _json_object(fields.get("metadata"))
    except ValueError:
        path.unlink()
        return problem(422, "- metadata: must be a JSON object\n", "Input validation failed")
    upload = Upload(
        id=secrets.token_urlsafe(24).replace("-", "A").replace("_", "B"),
        path=path,
        name=fields.get("filename") or part_name or "file",
        content_type=fields.get("type") or part_type or "application/octet-stream",
        size=size,
        sha256=sha,
        md5=md5,
        metadata=metadata,
        token=token_of(request),
        created_at=datetime.now(timezone.utc),
    )
    uploads.files[upload.id] = upload
    return json_reply(upload.to_json(base_url(request)), 201)


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _upload(request: web.Request) -> Upload | None:
    upload = request.app[STATE].uploads.files.get(request.match_info["file_id"])
    return upload if upload is not None and upload.token == token_of(request) else None


async def get_file(request: web.Request) -> web.StreamResponse:
    upload = _upload(request)
    return not_found() if upload is None else json_reply(upload.to_json(base_url(request)))


async def delete_file(request: web.Request) -> web.StreamResponse:
    upload = _upload(request)
    if upload is None:
        return not_found()
    del request.app[STATE].uploads.files[upload.id]
    upload.path.unlink(missing_ok=True)
    # As recorded: 204, an empty body, text/plain.
    return web.Response(status=204, content_type="text/plain")


async def list_files(request: web.Request) -> web.StreamResponse:
    token = token_of(request)
    uploads = [u for u in request.app[STATE].uploads.files.values() if u.token == token]
    uploads.reverse()  # newest first
    order = {u.id: i for i, u in enumerate(uploads)}
    base = base_url(request)
    return page_of(request, uploads, lambda u: -order[u.id], lambda u: u.to_json(base))


async def download_file(request: web.Request) -> web.StreamResponse:
    """A signed download: the signature, not a token, grants it (as documented)."""
    uploads = request.app[STATE].uploads
    upload = uploads.files.get(request.match_info["file_id"])
    query = request.query
    owner, expiry, signature = query.get("owner"), query.get("expiry", ""), query.get("signature")
    valid = (
        upload is not None
        and owner is not None
        and signature is not None
        and expiry.isdigit()
        and int(expiry) > time.time()
        and hmac.compare_digest(signature, uploads.signature(owner, upload.id, int(expiry)))
    )
    if not valid or upload is None:
        return problem(404, "File not found")
    return web.FileResponse(upload.path, headers={"Content-Type": upload.content_type})


def add_file_routes(app: web.Application) -> None:
    """The ``/v1/files`` routes of the API app."""
    r = app.router
    r.add_post("/v1/files", create_file)
    r.add_get("/v1/files", list_files)
    r.add_get("/v1/files/{file_id}", get_file)
    r.add_delete("/v1/files/{file_id}", delete_file)
    r.add_get("/v1/files/{file_id}/download", download_file)
