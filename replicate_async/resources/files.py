"""``client.files``: upload files for inputs, and list, get and delete them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..files import FileInput, as_file_input, upload_file
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
