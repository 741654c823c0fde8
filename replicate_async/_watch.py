"""Waiting for a prediction: the one polling loop, shared by ``wait``, ``watch``, ``run``, streams.

The decisions (which snapshot is news, how long to wait, when to give up) are
:class:`~.protocol.polling.PollState`'s; this module sleeps and fetches. Polls are
ordinary GETs through the session's request path, so they share its rate limiter.
"""

from __future__ import annotations

from ._aiter import AsyncClosing
from ._session import Session
from .protocol.polling import PollState
from .protocol.refs import job_id
from .types import Prediction

__all__ = ["PredictionWatch", "get_prediction", "wait_for"]


async def get_prediction(session: Session, prediction_id: str) -> Prediction:
    """``GET /predictions/{id}``."""
    return await session.request_json("GET", f"/predictions/{job_id(prediction_id)}", Prediction)


class PredictionWatch(AsyncClosing):
    """Each new state of a prediction (status, output or logs changed), ending at a terminal one.

    What ``predictions.watch()`` returns. Iterate it once; ``timeout`` seconds without a
    terminal status raise :class:`~.errors.WaitTimeoutError`. Class-based rather than a
    generator so that a bare ``break`` leaves nothing behind: between snapshots it holds
    no connection and no task.
    """

    __slots__ = ("_closed", "_first", "_session", "_state", "_timeout")

    def __init__(
        self, session: Session, prediction: Prediction | str, *, timeout: float | None = None
    ) -> None:
        self._session = session
        # A bad id is an error now, not on the first iteration.
        self._first: Prediction | str = (
            prediction if isinstance(prediction, Prediction) else job_id(prediction)
        )
        self._timeout = timeout
        self._state: PollState | None = None
        self._closed = False

    def __aiter__(self) -> PredictionWatch:
        return self

    async def __anext__(self) -> Prediction:
        session = self._session
        clock = session.timing.monotonic
        while True:
            state = self._state
            if self._closed or (state is not None and state.done):
                raise StopAsyncIteration
            if state is None:
                state = self._state = PollState(
                    session.config.polling, timeout=self._timeout, now=clock()
                )
                first = self._first
                snapshot = (
                    first if isinstance(first, Prediction) else await get_prediction(session, first)
                )
            else:
                assert state.current is not None
                await session.sleep(state.next_delay(clock()))
                snapshot = await get_prediction(session, state.current.id)
            if state.observe(snapshot):
                return snapshot

    async def aclose(self) -> None:
        """Stop watching."""
        self._closed = True


async def wait_for(
    session: Session, prediction: Prediction | str, *, timeout: float | None = None
) -> Prediction:
    """Poll until the prediction ends and return its last state (whatever the status)."""
    if isinstance(prediction, Prediction) and prediction.done:
        return prediction
    last: Prediction | None = None
    async for snapshot in PredictionWatch(session, prediction, timeout=timeout):
        last = snapshot
    assert last is not None
    return last
