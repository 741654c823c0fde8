"""A handle around an async generator: iterator, async context manager and ``aclose()``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["AsyncIteratorHandle"]

T = TypeVar("T")


class AsyncIteratorHandle(Generic[T]):
    """What ``watch``, ``run_many`` and friends return, without ``await``.

    The generator's body (and so its first request) starts on the first iteration.
    ``break``, ``aclose()`` or leaving ``async with`` runs its cleanup at once.
    """

    __slots__ = ("_gen",)

    def __init__(self, gen: AsyncGenerator[T, None]) -> None:
        self._gen = gen

    def __aiter__(self) -> AsyncIteratorHandle[T]:
        return self

    async def __anext__(self) -> T:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        """Stop, releasing whatever the iteration holds."""
        await self._gen.aclose()

    async def __aenter__(self) -> AsyncIteratorHandle[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
