"""Lazy async iteration over paged lists: items one by one, or whole pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._aiter import AsyncClosing
from .errors import MalformedResponseError
from .types import Page

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["AsyncPager", "list_pages"]

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
    ``async with`` block) stops it. No connection is held between pages, so a bare
    ``break`` leaves nothing behind.
    """

    __slots__ = ("_buffer", "_closed", "_fetch", "_next", "_seen", "_started")

    def __init__(self, fetch: FetchPage[T]) -> None:
        self._fetch = fetch
        self._buffer: list[T] = []
        self._next: str | None = None
        self._seen: set[str] = set()  # next links followed: one that comes back is a loop
        self._started = False
        self._closed = False

    async def next_page(self) -> Page[T] | None:
        """The next page, or None after the last one."""
        if self._closed:
            return None
        if not self._started:
            page = await self._fetch(None)
            # Only now: a first page that failed is asked for again by the next call,
            # instead of the list reading as empty.
            self._started = True
        elif self._next is not None:
            page = await self._fetch(self._next)
        else:
            return None
        link = page.next if _has_next(page) else None
        if link is not None:
            if link in self._seen:
                self._closed = True
                raise MalformedResponseError(
                    f"the list's next link {link!r} came back a second time: the pages go "
                    "round in a loop; stopped."
                )
            self._seen.add(link)
        self._next = link
        return page

    async def pages(self) -> AsyncIterator[Page[T]]:
        """Yield whole pages, following ``next`` until the last."""
        while (page := await self.next_page()) is not None:
            yield page

    def __aiter__(self) -> AsyncPager[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            page = await self.next_page()
            if page is None:
                raise StopAsyncIteration
            self._buffer.extend(reversed(page.results))
        return self._buffer.pop()

    async def aclose(self) -> None:
        """Stop iterating; later iterations end at once."""
        self._closed = True
        self._buffer.clear()


def list_pages(
    session: Session,
    path: str,
    item: type[T],
    *,
    params: Mapping[str, Any] | None = None,
    query: str | None = None,
) -> AsyncPager[T]:
    """The pages of a list endpoint: ``GET path?params``, or ``QUERY path`` with ``query``.

    ``next`` links are absolute URLs carrying their own cursor (and the filters), so
    they are followed as they are, always with GET.
    """
    kind: Any = Page[item]  # type: ignore[valid-type]

    async def fetch(url: str | None) -> Page[T]:
        if url is not None:
            if not session.on_api_origin(url):
                raise MalformedResponseError(
                    f"the list's next link {url!r} is not a URL on the API's origin "
                    f"({session.config.base_url}); not followed (it would get the token)."
                )
            page: Page[T] = await session.request_json("GET", url, kind)
        elif query is not None:
            page = await session.request_json(
                "QUERY", path, kind, content=query.encode(), content_type="text/plain"
            )
        else:
            page = await session.request_json("GET", path, kind, params=params)
        return page

    return AsyncPager(fetch)
