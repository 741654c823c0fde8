"""What every resource shares: the client it calls, and paging through a list endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ..pagination import AsyncPager
from ..types import Page

if TYPE_CHECKING:
    from ..client import AsyncReplicate

T = TypeVar("T")


class Resource:
    """A thin area of the API: methods build a path, call the client, structure the reply."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncReplicate) -> None:
        self._client = client

    def _pager(
        self, path: str, item: type[T], params: dict[str, Any] | None = None
    ) -> AsyncPager[T]:
        async def fetch(url: str | None) -> Page[T]:
            if url is None:
                return await self._client.request_json("GET", path, Page[item], params=params)  # type: ignore[valid-type]
            # ``next`` is an absolute URL carrying its own cursor (and our filters).
            return await self._client.request_json("GET", url, Page[item])  # type: ignore[valid-type]

        return AsyncPager(fetch)
