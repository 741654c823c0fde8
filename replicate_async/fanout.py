"""Fan-out: run many inputs with bounded concurrency, results in completion order.

At most ``concurrency`` tasks exist at any time and inputs are pulled lazily, so 10,000
inputs cost what ``concurrency`` of them cost. Rate limits are the session's business
(every create goes through its limiter) and polling the poller's (one loop for all the
predictions in flight). ``progress`` hears the counts as they change.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sized,
)
from types import TracebackType
from typing import Any, Protocol

import attrs

from ._aiter import AsyncClosing
from ._clock import Clock
from ._transport import Connections
from .errors import PredictionCanceled
from .journal import JournalError
from .types import Prediction

__all__ = ["JobHooks", "Progress", "RunMany", "RunResult", "Track"]

Inputs = Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]]


@attrs.frozen(kw_only=True)
class Progress:
    """Where a ``run_many`` stands: what ``progress=`` callbacks receive.

    ``total`` is the number of inputs when ``inputs`` has a length (None for a
    generator); ``queued`` the inputs not started yet (None without a total);
    ``creating`` the creates in the air; ``running`` the predictions created and not
    finished; then how many ended each way. ``rate`` is finished predictions a second
    since the first create; ``eta`` the seconds left at that rate (None if unknown).
    """

    total: int | None
    queued: int | None
    creating: int
    running: int
    succeeded: int
    failed: int
    canceled: int
    elapsed: float
    rate: float
    eta: float | None
    #: results handed back from a journal, without a request (counted in the above too)
    replayed: int = 0
    #: inputs a journal had seen through before (``replay=False``): no result for them
    skipped: int = 0

    @property
    def finished(self) -> int:
        """Inputs that ended, whichever way."""
        return self.succeeded + self.failed + self.canceled


class Track:
    """One input's way through ``run_many``: the work says when its create is done.

    A journal's job may also say its result is a replay (``replayed``) or that there is
    none to give (``skip()``: the caller took it in an earlier run).
    """

    __slots__ = ("_owner", "replayed", "skipped", "state")

    def __init__(self, owner: RunMany) -> None:
        # Weak: the task holds its track, and a strong reference back would keep the
        # iterator alive after a bare ``break``, when it must be dropped (and let go).
        self._owner = weakref.ref(owner)
        self.state = "creating"
        self.replayed = False
        self.skipped = False

    def skip(self) -> None:
        """This input yields no result (whatever the work returns)."""
        self.skipped = True

    def running(self) -> None:
        """The prediction was created and runs (or has already finished)."""
        owner = self._owner()
        if self.state == "creating" and owner is not None:
            self.state = "running"
            owner._moved("creating", "running")


One = Callable[[int, Mapping[str, Any], Track], Awaitable[tuple[Prediction | None, Any]]]


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
    #: True when it came from a journal (an earlier run's result), not from a request
    replayed: bool = False

    @property
    def ok(self) -> bool:
        """True when the prediction succeeded."""
        return self.error is None

    def unwrap(self) -> Any:
        """The output, or raise the error."""
        if self.error is not None:
            raise self.error
        return self.output


class JobHooks(Protocol):
    """What a journaled job does around the fan-out (see :class:`RunMany`)."""

    async def start(self) -> None: ...

    async def taken(self, index: int) -> None: ...

    def close(self) -> None: ...


_END = object()
#: the least time between two progress callbacks (the last one always comes)
_PROGRESS_EVERY = 0.1


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

    With a journal: ``start`` runs before the first input is read, ``taken(index)``
    when the caller asks for the result after that input's (it is done with it) or the
    run ends, ``close`` when the run is over, whichever way.
    """

    __slots__ = (
        "__weakref__",
        "_async_source",
        "_clock",
        "_closed",
        "_concurrency",
        "_connections",
        "_counts",
        "_emitted",
        "_exhausted",
        "_handed",
        "_hooks",
        "_index",
        "_one",
        "_pending",
        "_progress",
        "_progress_error",
        "_ready",
        "_source",
        "_started",
        "_total",
    )

    def __init__(
        self,
        one: One,
        inputs: Inputs,
        concurrency: int,
        *,
        progress: Callable[[Progress], object] | None = None,
        clock: Clock = time.monotonic,
        hooks: JobHooks | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if progress is not None and not callable(progress):
            raise TypeError(f"progress must be a callable taking a Progress, got {progress!r}")
        self._one = one
        self._concurrency = concurrency
        self._progress = progress
        self._progress_error: BaseException | None = None
        self._clock = clock
        self._counts = dict.fromkeys(
            ("creating", "running", "succeeded", "failed", "canceled", "replayed", "skipped"), 0
        )
        self._hooks = hooks
        self._handed: int | None = None  # the index of the result the caller holds
        self._total = len(inputs) if isinstance(inputs, Sized) else None
        self._started: float | None = None
        self._emitted = -math.inf
        self._async_source: AsyncIterator[Mapping[str, Any]] | None = None
        self._source: Iterator[Mapping[str, Any]] | None = None
        if isinstance(inputs, AsyncIterable):
            self._async_source = aiter(inputs)
        else:
            self._source = iter(inputs)
        self._pending: dict[
            asyncio.Future[tuple[Prediction | None, Any]], tuple[int, Any, Track]
        ] = {}
        self._ready: collections.deque[RunResult] = collections.deque()
        self._connections = Connections()
        self._index = 0
        self._exhausted = False
        self._closed = False

    def __aiter__(self) -> RunMany:
        return self

    async def __anext__(self) -> RunResult:
        hooks = self._hooks
        try:
            if hooks is not None:
                if self._started is None and not self._closed:
                    await hooks.start()
                await self._hand_back()
            while not self._ready:
                if self._closed:
                    raise StopAsyncIteration
                await self._top_up()
                if not self._pending:
                    self._closed = True
                    self._emit(final=True)
                    if hooks is not None:
                        hooks.close()
                    raise StopAsyncIteration
                done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    result = self._result(task)
                    if result is not None:
                        self._ready.append(result)
                self._emit()
            if self._progress_error is not None:
                raise self._progress_error
        except StopAsyncIteration:
            raise
        except BaseException:
            self._abort()  # an error, or the consumer cancelled: nothing keeps running
            raise
        result = self._ready.popleft()
        self._handed = result.index
        return result

    async def _hand_back(self) -> None:
        """The caller asked for more: it is done with the result it held."""
        index, self._handed = self._handed, None
        if index is not None and self._hooks is not None:
            await self._hooks.taken(index)

    # -- progress ------------------------------------------------------------------------

    def _moved(self, source: str, target: str) -> None:
        self._counts[source] -= 1
        self._counts[target] += 1
        self._emit()

    def snapshot(self) -> Progress:
        """The counts now."""
        c = self._counts
        now = self._clock()
        elapsed = 0.0 if self._started is None else now - self._started
        finished = c["succeeded"] + c["failed"] + c["canceled"]
        rate = finished / elapsed if elapsed > 0 else 0.0
        total = self._total
        queued = None if total is None else max(0, total - self._index)
        eta = None
        if total is not None and rate > 0:
            eta = (total - finished) / rate
        return Progress(
            replayed=c["replayed"],
            skipped=c["skipped"],
            total=total,
            queued=queued,
            creating=c["creating"],
            running=c["running"],
            succeeded=c["succeeded"],
            failed=c["failed"],
            canceled=c["canceled"],
            elapsed=elapsed,
            rate=rate,
            eta=eta,
        )

    def _emit(self, *, final: bool = False) -> None:
        callback = self._progress
        if callback is None or self._progress_error is not None:
            return
        now = self._clock()
        if not final and now - self._emitted < _PROGRESS_EVERY:
            return
        self._emitted = now
        try:
            callback(self.snapshot())
        except Exception as error:  # a broken callback stops the run, in the consumer
            self._progress_error = error

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
            if self._started is None:
                self._started = self._clock()
            track = Track(self)
            # Tasks inherit the context they are made in: their connections report to us.
            token = self._connections.bind()
            try:
                task = asyncio.ensure_future(self._one(self._index, item, track))
            finally:
                Connections.unbind(token)
            task.add_done_callback(_retrieve)
            self._pending[task] = (self._index, item, track)
            self._counts["creating"] += 1
            self._index += 1

    def _result(self, task: asyncio.Future[tuple[Prediction | None, Any]]) -> RunResult | None:
        index, item, track = self._pending.pop(task)
        counts = self._counts
        counts[track.state] -= 1
        error = task.exception()
        if isinstance(error, JournalError) or not isinstance(error, (Exception, type(None))):
            raise error  # the job cannot go on (its journal failed), or a cancellation
        if track.skipped and error is None:
            counts["skipped"] += 1
            return None
        counts["replayed"] += track.replayed
        if error is None:
            counts["succeeded"] += 1
            prediction, output = task.result()
            return RunResult(index, item, output, None, prediction, track.replayed)
        counts["canceled" if isinstance(error, PredictionCanceled) else "failed"] += 1
        prediction = getattr(error, "prediction", None)
        return RunResult(index, item, None, error, prediction, track.replayed)

    def _abort(self) -> None:
        """Stop everything now, from sync code: cancel the tasks, close their connections."""
        if self._closed and not self._pending:
            return  # stopped already (aclose, then the drop of the iterator)
        self._closed = True
        self._ready.clear()
        for task in self._pending:
            task.cancel()
        self._connections.close_all()
        if self._hooks is not None:
            self._close_hooks_after(list(self._pending), self._hooks)

    @staticmethod
    def _close_hooks_after(tasks: list[asyncio.Future[Any]], hooks: JobHooks) -> None:
        """Close the journal once the cancelled tasks have wound down.

        Their last journal writes (a create's id, on the way out) must land first: each
        starts its write before its task ends, and the journal closes after writes in
        flight.
        """
        left = [t for t in tasks if not t.done()]
        if not left:
            hooks.close()
            return
        count = len(left)

        def one_done(_: asyncio.Future[Any]) -> None:
            nonlocal count
            count -= 1
            if count == 0:
                hooks.close()

        for task in left:
            task.add_done_callback(one_done)

    async def aclose(self) -> None:
        """Stop, cancelling what is still running, and wait for it to wind down.

        (With a journal, the result last handed out is not counted as taken: leaving
        ``async with`` without an error is what says the caller is done with it.)
        """
        try:
            self._abort()
        finally:
            pending, self._pending = list(self._pending), {}
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self._hooks is not None and not self._closed:
                # Left normally (a break, or the end): done with the result it held.
                with contextlib.suppress(Exception):  # a full disk must not mask the exit
                    await self._hand_back()
        finally:
            await self.aclose()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # the loop may be gone at interpreter exit
            self._abort()
