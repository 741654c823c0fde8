"""Closing by context: the ``async with`` base class of everything that holds a resource."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["AsyncClosing"]

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
