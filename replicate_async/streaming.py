"""Streaming a prediction's output as server-sent events, resuming when the line drops.

``PredictionStream`` is what ``client.stream()`` and ``client.predictions.stream()``
return. It opens ``urls.stream`` (another host than the API: no Authorization header is
ever sent there), decodes events with :class:`~replicate_async.sse.SSEDecoder`, and:

- stops at ``done``; ``done`` with ``{"reason": "canceled"}`` raises PredictionCanceled;
- raises PredictionFailed at an ``error`` event, after every event before it;
- reconnects with ``Last-Event-ID`` when the connection drops before ``done``, skipping
  events it already gave you; if the server cannot resume, it waits for the prediction
  and gives you what is missing from its ``output``: a stream never ends early in
  silence;
- closes its connection at once on ``break`` (when the stream object is dropped),
  ``aclose()``, leaving ``async with``, or cancellation.
"""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ._poller import get_prediction
from ._session import Session
from ._transport import HoldsBody
from .errors import (
    APIError,
    MalformedResponseError,
    PredictionCanceled,
    PredictionFailed,
    ReplicateError,
    TransportError,
    error_from_response,
    prediction_error,
)
from .files import FILE_URL_PREFIXES, FileOutput
from .protocol.checks import seconds
from .protocol.retry import backoff
from .protocol.sse import MAX_EVENT_SIZE, EventTooLarge, ReplayFilter, ServerSentEvent, SSEDecoder
from .types import Prediction, Status

__all__ = ["PredictionStream", "StreamPolicy"]

#: bytes decoded at a time (a few hundred token events)
_SLICE = 8 * 1024
#: answers from the stream host worth connecting again after
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})


@attrs.frozen(kw_only=True)
class StreamPolicy:
    """How hard a stream tries to resume after its connection drops.

    ``read_timeout`` is the longest silence tolerated (the server sends a comment and
    closes after 30 s idle, so it should be longer than that); then it reconnects. The
    waits between reconnects follow the library's one backoff, the server's ``retry:``
    field first.

    ``idle_timeout``: this long without an event (comments and stray bytes do not
    count), the stream asks the API how the prediction is doing; if it has ended, the
    stream ends with it (giving whatever output it had not given), so a server that
    only sends comments cannot hold a stream open after its prediction is done.
    ``max_event_size`` caps one event (and one line) in bytes.
    """

    max_reconnects: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    initial_backoff: float = attrs.field(default=0.1, validator=seconds)
    max_backoff: float = attrs.field(default=5.0, validator=seconds)
    read_timeout: float = attrs.field(default=60.0, validator=seconds)
    idle_timeout: float = attrs.field(default=60.0, validator=seconds)
    max_event_size: int = attrs.field(default=MAX_EVENT_SIZE, validator=attrs.validators.ge(1024))


class PredictionStream(HoldsBody):
    """Events of one prediction, as they are made. Iterate it once."""

    def __init__(
        self,
        session: Session,
        start: Callable[[], Awaitable[Prediction]],
        wait: Callable[[Prediction], Awaitable[Prediction]],
        policy: StreamPolicy | None = None,
        *,
        on_abandon: Callable[[Prediction], None] | None = None,
    ) -> None:
        self._session = session
        self._start = start
        self._wait = wait  # for the fallback: the prediction's end, from the client's poller
        # Called with the prediction when the stream is left before its end (break,
        # aclose, cancellation): the prediction it started is cancelled then.
        self._on_abandon = on_abandon
        self._policy = policy or StreamPolicy()
        self.prediction: Prediction | None = None
        self._decoder = SSEDecoder(max_event_size=self._policy.max_event_size)
        self._last_event = 0.0  # when the last event came (comments do not count)
        self._queue: collections.deque[ServerSentEvent | BaseException] = collections.deque()
        self._unread = memoryview(b"")  # received, not yet decoded (see _fill)
        # What a reconnect may replay: bounded, not a set of every id (a stream may run
        # for hours).
        self._replays = ReplayFilter()
        self._outputs = 0  # output events given out, to know what is missing after a fallback
        self._text = 0  # characters of text output given out, for a string output's rest
        self._finished = False
        self._reconnects = 0
        self._file_stream = False

    def __aiter__(self) -> PredictionStream:
        return self

    async def __anext__(self) -> ServerSentEvent:
        try:
            while not self._queue:
                if self._finished:
                    raise StopAsyncIteration
                await self._fill()
        except ReplicateError:
            # An error: the connection goes now, and a second iteration does not start
            # (or create) it all over again. The prediction is left as it is.
            self._finished = True
            self._close_body()
            raise
        except StopAsyncIteration:
            self._close_body()
            raise
        except BaseException:
            # Cancelled (or interrupted) mid-stream: the caller gave up on the prediction.
            self._abandon()
            raise
        item = self._queue.popleft()
        if isinstance(item, BaseException):
            self._finished = True
            self._queue.clear()
            self._unread = memoryview(b"")
            self._close_body()
            raise item
        return item

    async def aclose(self) -> None:
        """Stop streaming and release the connection (cancelling what it started, if so)."""
        self._abandon()

    def _abandon(self) -> None:
        """Stop at once (sync: also from ``__del__``); cancel the prediction if unfinished."""
        ended = self._finished
        self._finished = True
        self._queue.clear()
        self._unread = memoryview(b"")
        self._close_body()
        on_abandon, self._on_abandon = self._on_abandon, None
        prediction = self.prediction
        if on_abandon is not None and not ended and prediction is not None:
            on_abandon(prediction)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # the loop may be gone at interpreter exit
            self._abandon()

    # -- filling the queue --------------------------------------------------------------

    async def _fill(self) -> None:
        if self.prediction is None:
            self.prediction = await self._start()
            url = self.prediction.urls.stream if self.prediction.urls else None
            if not url:
                raise ValueError(
                    f"Prediction {self.prediction.id} of {self.prediction.model} has no "
                    "stream URL: its model does not stream (Replicate gives one to every "
                    "prediction of a model whose output is an iterator or files; older "
                    "servers only to those created with stream=True). Wait for its output "
                    "instead: await client.predictions.wait(...)."
                )
            # File streams (".../v1/files/...") carry one file per output event.
            self._file_stream = "/v1/files/" in url
            self._last_event = self._session.timing.monotonic()
        if self._unread:
            # Decoded a slice at a time: a chunk of 64 KiB holds thousands of tokens, and
            # making them all at once kept them alive together, which made the garbage
            # collector sweep them again and again (a third of the CPU per event).
            chunk, self._unread = bytes(self._unread[:_SLICE]), self._unread[_SLICE:]
        elif self._body is None:
            await self._connect()
            return
        else:
            try:
                received = await self._body.read_any()
            except TransportError:
                received = b""  # a dropped connection reads as an early end: resume below
            if not received:
                self._close_body()
                await self._reconnect_or_fall_back()
                return
            if len(received) <= _SLICE:
                chunk = received
            else:
                chunk, self._unread = received[:_SLICE], memoryview(received)[_SLICE:]
        try:
            events = self._decoder.feed(chunk)
        except EventTooLarge as too_large:
            error = MalformedResponseError(f"GET {self._stream_url()}: {too_large}")
            raise error from None
        now = self._session.timing.monotonic()
        if events:
            self._last_event = now
            self._handle(events)
        elif now - self._last_event > self._policy.idle_timeout:
            await self._check_idle()

    def _stream_url(self) -> str:
        urls = self.prediction.urls if self.prediction is not None else None
        return (urls.stream if urls is not None else None) or ""

    async def _check_idle(self) -> None:
        """No event for a while (comments, stray bytes): has the prediction ended?"""
        assert self.prediction is not None
        self._last_event = self._session.timing.monotonic()
        latest = await get_prediction(self._session, self.prediction.id)
        if latest.done:
            # It ended and the stream did not say so: end from what the API says.
            await self._fall_back(None, latest)

    async def _connect(self) -> None:
        assert self.prediction is not None
        url = self.prediction.urls.stream if self.prediction.urls else None
        assert url is not None
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self._decoder.last_event_id:
            headers["Last-Event-ID"] = self._decoder.last_event_id
        try:
            body = await self._session.open(
                url, headers=headers, read_timeout=self._policy.read_timeout
            )
        except TransportError:
            await self._reconnect_or_fall_back()
            return
        if body.status >= 400:
            error = error_from_response("GET", url, body.status, body.reason, await body.read())
            body.close()
            if body.status in _TRANSIENT:
                await self._reconnect_or_fall_back()  # busy: try again, then poll
                return
            if self._reconnects == 0 and not self._decoder.last_event_id:
                raise error  # the very first connection failed: nothing to resume
            # The server cannot resume this stream (expired, gone): recover by polling.
            await self._fall_back(error)
            return
        self._body = body
        if self._decoder.last_event_id:
            self._replays.resumed(self._decoder.last_event_id)
        # A fresh decoder for a fresh connection, keeping the id to resume from and the
        # reconnection delay the server asked for.
        self._decoder = SSEDecoder(
            self._decoder.last_event_id,
            retry=self._decoder.retry,
            max_event_size=self._policy.max_event_size,
        )

    async def _reconnect_or_fall_back(self) -> None:
        if self._finished:
            return
        if self._reconnects >= self._policy.max_reconnects:
            await self._fall_back(None)
            return
        self._reconnects += 1
        policy, retry = self._policy, self._decoder.retry
        delay = backoff(
            self._reconnects,
            initial=policy.initial_backoff,
            cap=policy.max_backoff,
            server_delay=None if retry is None else retry / 1000,
        )
        await self._session.sleep(delay)
        await self._connect()

    def _handle(self, events: list[ServerSentEvent]) -> None:
        """Queue what a chunk's events give out; the end of the stream ends it."""
        # One loop over the chunk's events with what it needs in locals: a token stream
        # runs this for every token, and per-event method calls were most of its cost.
        if self._finished:
            return  # after an error event: its closing done adds nothing
        # The connection works: the reconnect budget is per drop, not per stream.
        self._reconnects = 0
        seen, give = self._replays.seen, self._queue.append
        files, session = self._file_stream, self._session
        outputs = text = 0
        for event in events:
            if event.id is not None and seen(event.id):
                continue  # replayed after a reconnect: already given out
            if event.event == "output":
                outputs += 1
                text += len(event.data)
                if files or event.data.startswith(FILE_URL_PREFIXES):
                    event.file = FileOutput(event.data, session)
                give(event)
            elif self._other(event):
                break  # the stream ended
        self._outputs += outputs
        self._text += text

    def _other(self, event: ServerSentEvent) -> bool:
        """An event other than output; True when it ends the stream."""
        kind = event.event
        if kind == "error":
            self._queue.append(self._failed(event))
            self._finished = True
        elif kind == "done":
            reason = _reason(event)
            if reason == "canceled":
                self._queue.append(self._canceled())
            elif reason == "error":  # a done that says error, with no error event before it
                self._queue.append(self._failed(None))
            self._finished = True
            self._close_body()
        else:
            self._queue.append(event)  # logs, and types this version does not know
        return self._finished

    def _failed(self, event: ServerSentEvent | None) -> PredictionFailed:
        assert self.prediction is not None
        detail: Any = None
        if event is not None:
            try:
                detail = event.json().get("detail")
            except (ValueError, AttributeError, RecursionError):
                detail = event.data
        prediction = attrs.evolve(self.prediction, status=Status.FAILED, error=detail)
        return PredictionFailed(
            f"Prediction {prediction.id} failed while streaming: {detail or 'no detail given'}",
            prediction=prediction,
            detail=detail if isinstance(detail, str) else None,
        )

    def _canceled(self) -> PredictionCanceled:
        assert self.prediction is not None
        prediction = attrs.evolve(self.prediction, status=Status.CANCELED)
        return PredictionCanceled(
            f"Prediction {prediction.id} was canceled while streaming.", prediction=prediction
        )

    async def _fall_back(
        self, cause: ReplicateError | None, final: Prediction | None = None
    ) -> None:
        """The stream cannot go on: wait for the prediction, give what is missing."""
        assert self.prediction is not None
        self._close_body()
        if final is None:
            try:
                final = await self._wait(self.prediction)
            except APIError:
                if cause is None:
                    raise
        if final is None:
            # Why the stream could not go on says more than why polling failed too.
            assert cause is not None
            raise cause
        self.prediction = final
        output = final.output
        missing: list[Any]
        if isinstance(output, list):
            missing = output[self._outputs :]
        elif isinstance(output, str):
            # Text streamed in pieces ends as one string: what follows the pieces given.
            missing = [output[self._text :]] if len(output) > self._text else []
        else:
            missing = []
        self._handle(
            [
                ServerSentEvent("output", item if isinstance(item, str) else json.dumps(item))
                for item in missing
            ]
        )
        self._finished = True
        error = prediction_error(final)
        if error is not None:
            self._queue.append(error)


def _reason(event: ServerSentEvent) -> str | None:
    try:
        data = event.json()
    except (ValueError, RecursionError):
        return None
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) else None
