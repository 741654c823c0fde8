"""Files uploaded through ``POST /v1/files``: kept on disk, hashed, expiring like Replicate's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from ._wire import format_time

__all__ = ["Upload", "UploadStore", "file_digest"]

_FILE_URL = re.compile(r"/v1/files/([A-Za-z0-9_-]+)$")


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
        """The file as the API returns it (milliseconds in its timestamps, as recorded)."""
        created = self.created_at
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": _millis(created),
            "expires_at": _millis(created + timedelta(hours=24)),
            "urls": {"get": f"{base_url}/files/{self.id}"},
        }


def _millis(value: datetime) -> str:
    return format_time(value)[:23] + "Z"


class UploadStore:
    """Uploaded files on disk, in a directory removed when the emulator stops."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.files: dict[str, Upload] = {}
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        #: the Files API signing secret: signs download URLs (owner, id, expiry)
        self.signing_key = secrets.token_bytes(32)

    def signature(self, owner: str, file_id: str, expiry: int) -> str:
        """Base64 HMAC-SHA256 of ``"{owner} {id} {expiry}"``, as the API documents it."""
        digest = hmac.new(
            self.signing_key, f"{owner} {file_id} {expiry}".encode(), hashlib.sha256
        ).digest()
        return base64.b64encode(digest).decode()

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
        match = _FILE_URL.search(value)
        return self.files.get(match.group(1)) if match else None


def file_digest(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, sha256) of a file on disk, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(1024 * 1024):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()
