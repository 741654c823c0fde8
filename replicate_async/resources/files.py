"""``client.files``: upload files for inputs, and list, get and delete them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from ..files import FileInput, FileOutput, as_file_input, upload_file
from ..pagination import AsyncPager, list_pages
from ..types import File
from ._base import Resource

__all__ = ["Files"]


class Files(Resource):
    """Uploaded files (they expire 24 hours after upload)."""

    __slots__ = ()

    async def create(
        self,
        file: Any,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> File:
        """Upload a path, bytes, a binary file object or an aiofiles handle.

        The content streams from its source (multipart), never read whole into memory.
        Over 100 MB is refused before anything is sent.
        """
        found = await as_file_input(file)
        if found is None:
            raise TypeError(
                "files.create takes a pathlib.Path, bytes, a binary file object or an "
                f"aiofiles handle, not {type(file).__name__} (for a path in a str, wrap it "
                "in pathlib.Path)"
            )
        return await self.upload(
            found, filename=filename, content_type=content_type, metadata=metadata
        )

    async def upload(
        self,
        file: FileInput,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> File:
        """Upload a :class:`FileInput` (what :meth:`create` and file inputs use)."""
        return await upload_file(
            self._session, file, filename=filename, content_type=content_type, metadata=metadata
        )

    async def get(self, file_id: str) -> File:
        """One file's details."""
        return await self._session.request_json("GET", f"/files/{quote(file_id)}", File)

    def list(self) -> AsyncPager[File]:
        """Your files, newest first."""
        return list_pages(self._session, "/files", File)

    async def delete(self, file_id: str) -> None:
        """Delete a file now rather than when it expires."""
        await self._session.request("DELETE", f"/files/{quote(file_id)}")

    def download(
        self,
        file: str,
        *,
        owner: str | None = None,
        expiry: int | None = None,
        signature: str | None = None,
    ) -> FileOutput:
        """A signed download of a file (``GET /files/{id}/download``), to read or save.

        ``file`` is the signed URL whole (``.../files/{id}/download?owner=...&expiry=...
        &signature=...``), or the file's id with ``owner``, ``expiry`` and
        ``signature``. The signature grants the access: the download carries no token.
        Nothing is sent until the handle is read (``await handle.save(path)``).
        """
        if not isinstance(file, str) or not file.strip():
            raise ValueError("files.download needs a signed URL or a file id")
        if file.startswith(("http://", "https://")):
            parts = urlsplit(file)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            path = parts.path.rstrip("/")
            if not self._session.on_api_origin(file) or not path.endswith("/download"):
                raise ValueError(
                    f"not a signed download URL of this API ({self._session.config.base_url}"
                    f"/files/<id>/download?...): {file!r}"
                )
            file_id = path.rsplit("/", 2)[-2]
            owner = owner or query.get("owner")
            signature = signature or query.get("signature")
            expiry = expiry if expiry is not None else _int(query.get("expiry"))
        else:
            file_id = file
        missing = [
            name
            for name, value in (("owner", owner), ("expiry", expiry), ("signature", signature))
            if value in (None, "")
        ]
        if missing:
            raise ValueError(
                f"files.download needs {', '.join(missing)}: pass the signed URL whole, or "
                "the id with owner=, expiry= and signature="
            )
        params = urlencode({"owner": owner, "expiry": expiry, "signature": signature})
        url = f"{self._session.config.base_url}/files/{quote(file_id)}/download?{params}"
        return FileOutput(url, self._session)


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        raise ValueError(f"a signed download's expiry is a Unix time, got {value!r}") from None
