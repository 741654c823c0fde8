"""Fan-out: run many inputs with bounded concurrency, results in completion order.

At most ``concurrency`` tasks exist at any time and inputs are pulled lazily, so 10,000
inputs cost what ``concurrency`` of them cost. Rate limits are the session's business:
every create and poll already goes through its limiter.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any

import attrs

from ._aiter import AsyncClosing
from ._transport import Connections
from .types import Prediction

__all__ = ["RunMany", "RunResult"]

Inputs = Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]]
One = Callable[[Mapping[str, Any]], Awaitable[tuple[Prediction, Any]]]


@attrs.frozen
class RunResult:
    """The outcome of one input of ``run_many``: ``output`` or ``error``, never both."""

    #: position of the input in ``inputs`` (results arrive in completion order)
    index: int
    input: Mapping[str, Any]
    output: Any = None
    error: Exception | None = None
    #: the last snapshot of the prediction, when one was created
    prediction: Prediction | None = None

    @property
    def ok(self) -> bool:
        """True when the prediction succeeded."""
        return self.error is None

    def unwrap(self) -> Any:
        """The output, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.output


_END = object()


def _retrieve(task: asyncio.Future[Any]) -> None:
    # A task cancelled by a dropped iterator is never awaited: read its end here, so
    # that asyncio does not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()


class RunMany(AsyncClosing):
    """What ``run_many`` returns: an async iterator of :class:`RunResult`.

    Nothing starts before the first iteration. ``break``, ``aclose()``, leaving
    ``async with`` or cancelling the consuming task stops it: the predictions' tasks
    still running are cancelled and the connections they hold are closed at once, even
    on a bare ``break`` (the iterator is dropped then, and ``__del__`` does it).
    """

    __slots__ = (
        "_async_source",
        "_closed",
        "_concurrency",
        "_connections",
        "_exhausted",
        "_index",
        "_one",
        "_pending",
        "_ready",
        "_source",
    )

    def __init__(self, one: One, inputs: Inputs, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._one = one
        self._concurrency = concurrency
        self._async_source: AsyncIterator[Mapping[str, Any]] | None = None
        self._source: Iterator[Mapping[str, Any]] | None = None
        if isinstance(inputs, AsyncIterable):
            self._async_source = aiter(inputs)
        else:
            self._source = iter(inputs)
        self._pending: dict[asyncio.Future[tuple[Prediction, Any]], tuple[int, Any]] = {}
        self._ready: collections.deque[RunResult] = collections.deque()
        self._connections = Connections()
        self._index = 0
        self._exhausted = False
        self._closed = False

    def __aiter__(self) -> RunMany:
        return self

    async def __anext__(self) -> RunResult:
        try:
            while not self._ready:
                if self._closed:
                    raise StopAsyncIteration
                await self._top_up()
                if not self._pending:
                    self._closed = True
                    raise StopAsyncIteration
                done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._ready.append(self._result(task))
        except BaseException:
            self._abort()  # an error, or the consumer cancelled: nothing keeps running
            raise
        return self._ready.popleft()

    async def _next_input(self) -> Any:
        try:
            if self._async_source is not None:
                return await self._async_source.__anext__()
            assert self._source is not None
            return next(self._source)
        except (StopIteration, StopAsyncIteration):
            self._exhausted = True
            return _END

    async def _top_up(self) -> None:
        # Top up only as slots free: inputs are never read ahead of the work.
        while not self._exhausted and len(self._pending) < self._concurrency:
            item = await self._next_input()
            if item is _END:
                return
            # Tasks inherit the context they are made in: their connections report to us.
            token = self._connections.bind()
            try:
                task = asyncio.ensure_future(self._one(item))
            finally:
                Connections.unbind(token)
            task.add_done_callback(_retrieve)
            self._pending[task] = (self._index, item)
            self._index += 1

    def _result(self, task: asyncio.Future[tuple[Prediction, Any]]) -> RunResult:
        index, item = self._pending.pop(task)
        error = task.exception()
        if error is None:
            prediction, output = task.result()
            return RunResult(index, item, output, None, prediction)
        if isinstance(error, Exception):
            return RunResult(index, item, None, error, getattr(error, "prediction", None))
        raise error

    def _abort(self) -> None:
        """Stop everything now, from sync code: cancel the tasks, close their connections."""
        self._closed = True
        self._ready.clear()
        for task in self._pending:
            task.cancel()
        self._connections.close_all()

    async def aclose(self) -> None:
        """Stop, cancelling what is still running, and wait for it to wind down."""
        self._abort()
        pending, self._pending = list(self._pending), {}
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # the loop may be gone at interpreter exit
            self._abort()
