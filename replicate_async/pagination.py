"""Lazy async iteration over paged lists: items one by one, or whole pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from ._aiter import AsyncClosing
from .types import Page

__all__ = ["AsyncPager"]

T = TypeVar("T")

#: fetch(None) gets the first page; fetch(url) follows a ``next`` link
FetchPage = Callable[[str | None], Awaitable[Page[T]]]


def _has_next(page: Page[T]) -> bool:
    # The API's own docs once showed "next": "null" (a string): treat it as the end too.
    return bool(page.next) and page.next != "null"


class AsyncPager(AsyncClosing, Generic[T]):
    """Items of a paged list, fetched a page at a time as you iterate.

    Nothing is requested until the first iteration. ``async for item in pager`` walks
    items; ``async for page in pager.pages()`` walks pages. ``aclose()`` (or leaving an
    ``async with`` block) stops it; no connection is held between pages.
    """

    __slots__ = ("_buffer", "_closed", "_fetch", "_next", "_started")

    def __init__(self, fetch: FetchPage[T]) -> None:
        self._fetch = fetch
        self._buffer: list[T] = []
        self._next: str | None = None
        self._started = False
        self._closed = False

    async def _next_page(self) -> Page[T] | None:
        if self._closed:
            return None
        if not self._started:
            self._started = True
            page = await self._fetch(None)
        elif self._next is not None:
            page = await self._fetch(self._next)
        else:
            return None
        self._next = page.next if _has_next(page) else None
        return page

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Yield whole pages, following ``next`` until the last."""
        while (page := await self._next_page()) is not None:
            yield page

    def __aiter__(self) -> AsyncPager[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            page = await self._next_page()
            if page is None:
                raise StopAsyncIteration
            self._buffer.extend(reversed(page.results))
        return self._buffer.pop()

    async def aclose(self) -> None:
        """Stop iterating; later iterations end at once."""
        self._closed = True
        self._buffer.clear()
