"""Waiting for a prediction: ``wait`` and ``watch``, over the client's one poller.

Neither polls by itself: both subscribe to the :class:`~._poller.Poller`, which polls
every waiting prediction of the client together. A wait with a timeout ends with
:class:`~.errors.WaitTimeoutError` (the prediction keeps running); a wait abandoned by
its caller (cancelled, or a loop that breaks) can cancel the prediction, through the
janitor, when it was asked to (``cancel_on_exit``).
"""

from __future__ import annotations

from ._aiter import AsyncClosing
from ._janitor import Janitor
from ._poller import Poller, Subscription, get_prediction
from .errors import ReplicateError, WaitTimeoutError
from .protocol.refs import job_id
from .types import Prediction, Status

__all__ = ["PredictionWatch", "get_prediction", "key_of", "wait_for"]


def key_of(prediction: Prediction) -> str:
    """What a prediction's run times are learnt under: its model, else its version."""
    return prediction.model or prediction.version or ""


def _timed_out(snapshot: Prediction, timeout: float | None) -> WaitTimeoutError:
    return WaitTimeoutError(
        f"Prediction {snapshot.id} is still {snapshot.status} after {timeout:g} s; "
        "it keeps running. Wait again, or cancel it with "
        f"client.predictions.cancel({snapshot.id!r}).",
        prediction=snapshot,
    )


class PredictionWatch(AsyncClosing):
    """Each new state of a prediction (status, output or logs changed), ending at a terminal one.

    What ``predictions.watch()`` returns. Iterate it once; ``timeout`` seconds without a
    terminal status raise :class:`~.errors.WaitTimeoutError`. Between snapshots it
    holds no connection and no task: a bare ``break`` leaves nothing behind (it stops
    polling for this watcher at once).
    """

    __slots__ = (
        "_closed",
        "_deadline",
        "_first",
        "_last",
        "_poller",
        "_subscription",
        "_timeout",
    )

    def __init__(
        self, poller: Poller, prediction: Prediction | str, *, timeout: float | None = None
    ) -> None:
        self._poller = poller
        self._subscription: Subscription | None = None
        self._closed = False
        self._timeout = timeout
        self._deadline: float | None = None
        self._last: Prediction | None = None
        # A bad id is an error now, not on the first iteration.
        self._first: Prediction | str = (
            prediction if isinstance(prediction, Prediction) else job_id(prediction)
        )

    def __aiter__(self) -> PredictionWatch:
        return self

    async def __anext__(self) -> Prediction:
        if self._closed or (self._last is not None and self._last.status in Status.TERMINAL):
            raise StopAsyncIteration
        poller = self._poller
        if self._last is None:
            clock = poller.session.timing.monotonic
            if self._timeout is not None:
                self._deadline = clock() + self._timeout
            first = self._first
            if not isinstance(first, Prediction):
                first = await get_prediction(poller.session, first)
            self._last = first
            if not first.done:
                self._subscription = poller.subscribe(first, key_of(first))
            return first
        subscription = self._subscription
        assert subscription is not None
        try:
            snapshot = await subscription.get(self._deadline)
        except BaseException:
            self._stop()
            raise
        if snapshot is None:
            self._stop()
            raise _timed_out(self._last, self._timeout)
        self._last = snapshot
        if snapshot.done:
            self._stop()
        return snapshot

    def _stop(self) -> None:
        self._closed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    async def aclose(self) -> None:
        """Stop watching."""
        self._stop()

    def __del__(self) -> None:
        self._stop()


async def wait_for(
    poller: Poller,
    prediction: Prediction,
    *,
    key: str | None = None,
    timeout: float | None = None,
    janitor: Janitor | None = None,
    quiet: float = 0.0,
) -> Prediction:
    """Wait until the prediction ends and return its last state (whatever the status).

    ``key``: the model its run times are learnt under. With a ``janitor``, a caller
    that gives up (cancelled, interrupted) has the prediction cancelled, in the
    background; a timeout (``WaitTimeoutError``) leaves it running. ``quiet``: poll it
    no more often than that many seconds (a webhook receiver brings its end).
    """
    key = key or key_of(prediction)
    if prediction.done:
        poller.learn(key, prediction)
        return prediction
    session = poller.session
    deadline = None if timeout is None else session.timing.monotonic() + timeout
    subscription = poller.subscribe(prediction, key, quiet=quiet)
    last = prediction
    try:
        while True:
            snapshot = await subscription.get(deadline)
            if snapshot is None:
                raise _timed_out(last, timeout)
            last = snapshot
            if snapshot.done:
                return snapshot
    except ReplicateError:
        raise
    except BaseException:
        if janitor is not None:
            janitor.cancel(prediction.id)
        raise
    finally:
        subscription.close()
