"""``client.collections``: curated collections of models."""

from __future__ import annotations

from urllib.parse import quote

from ..pagination import AsyncPager, list_pages
from ..types import Collection
from ._base import Resource

__all__ = ["Collections"]


class Collections(Resource):
    """Collections of models."""

    __slots__ = ()

    async def get(self, slug: str) -> Collection:
        """One collection with its models."""
        return await self._session.request_json("GET", f"/collections/{quote(slug)}", Collection)

    def list(self) -> AsyncPager[Collection]:
        """All collections (without their models)."""
        return list_pages(self._session, "/collections", Collection)
