"""Paged lists are fetched lazily, page by page, and stop at the last page."""

from __future__ import annotations

from replicate_async.pagination import AsyncPager
from replicate_async.types import Page


class Pages:
    def __init__(self, last_next: str | None = None) -> None:
        self.calls: list[str | None] = []
        self.pages = {
            None: Page(results=[1, 2], next="u2"),
            "u2": Page(results=[], next="u3"),  # an empty page in the middle is not the end
            "u3": Page(results=[3], next=last_next),
        }

    async def fetch(self, url: str | None) -> Page[int]:
        self.calls.append(url)
        return self.pages[url]


async def test_items_follow_next_lazily() -> None:
    pages = Pages()
    pager = AsyncPager(pages.fetch)
    assert pages.calls == []  # nothing before the first iteration
    assert [i async for i in pager] == [1, 2, 3]
    assert pages.calls == [None, "u2", "u3"]
    assert [i async for i in pager] == []  # exhausted stays exhausted


async def test_break_stops_fetching() -> None:
    pages = Pages()
    async with AsyncPager(pages.fetch) as pager:
        async for item in pager:
            if item == 2:
                break
    assert pages.calls == [None]


async def test_page_by_page_and_the_documented_null_string() -> None:
    pages = Pages(last_next="null")
    got = [page.results async for page in AsyncPager(pages.fetch).pages()]
    assert got == [[1, 2], [], [3]]


async def test_aclose() -> None:
    pages = Pages()
    pager = AsyncPager(pages.fetch)
    await pager.aclose()
    assert [i async for i in pager] == []
    assert pages.calls == []


async def test_a_page_that_failed_is_asked_for_again_even_the_first() -> None:
    pages = Pages()
    failures = {None: 1, "u2": 1}

    async def flaky(url: str | None) -> Page[int]:
        if failures.get(url):
            failures[url] -= 1
            pages.calls.append(url)
            raise ConnectionError("garbled")
        return await pages.fetch(url)

    pager = AsyncPager(flaky)
    got: list[int] = []
    while True:
        try:
            page = await pager.next_page()
        except ConnectionError:
            continue
        if page is None:
            break
        got += page.results
    # The first page's failure did not make the list read as empty.
    assert got == [1, 2, 3]
    assert pages.calls == [None, None, "u2", "u2", "u3"]
