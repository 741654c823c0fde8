"""Fan-out: run many inputs with bounded concurrency, results in completion order.

At most ``concurrency`` tasks exist at any time and inputs are pulled lazily, so 10,000
inputs cost what ``concurrency`` of them cost. Rate limits are the client's business:
every create and poll already goes through its limiter.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from typing import Any

import attrs

from .types import Prediction

__all__ = ["RunResult", "run_many"]


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


async def _numbered(
    inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
) -> AsyncGenerator[tuple[int, Mapping[str, Any]], None]:
    index = 0
    if isinstance(inputs, AsyncIterable):
        async for item in inputs:
            yield index, item
            index += 1
    else:
        for item in inputs:
            yield index, item
            index += 1


async def run_many(
    one: Callable[[Mapping[str, Any]], Awaitable[tuple[Prediction, Any]]],
    inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
    concurrency: int,
) -> AsyncGenerator[RunResult, None]:
    """Run ``one`` over ``inputs``, at most ``concurrency`` at once; yield as they finish."""
    source = _numbered(inputs)
    pending: dict[asyncio.Future[tuple[Prediction, Any]], tuple[int, Mapping[str, Any]]] = {}
    exhausted = False
    try:
        while True:
            # Top up only as slots free: inputs are never read ahead of the work.
            while not exhausted and len(pending) < concurrency:
                try:
                    index, item = await source.__anext__()
                except StopAsyncIteration:
                    exhausted = True
                    break
                pending[asyncio.ensure_future(one(item))] = (index, item)
            if not pending:
                return
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index, item = pending.pop(task)
                error = task.exception()
                if error is None:
                    prediction, output = task.result()
                    yield RunResult(index, item, output, None, prediction)
                elif isinstance(error, Exception):
                    yield RunResult(index, item, None, error, getattr(error, "prediction", None))
                else:
                    raise error
    finally:
        # Stopped early (break, aclose, cancellation): do not leave predictions' tasks behind.
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await source.aclose()
