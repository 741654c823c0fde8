"""Closing by context: the ``async with`` base class, and the handle over async generators."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["AsyncClosing", "AsyncIteratorHandle"]

T = TypeVar("T")
_S = TypeVar("_S", bound="AsyncClosing")


class AsyncClosing:
    """``async with obj:`` returns ``obj`` and ends with ``await obj.aclose()``."""

    __slots__ = ()

    async def aclose(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncIteratorHandle(AsyncClosing, Generic[T]):
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
