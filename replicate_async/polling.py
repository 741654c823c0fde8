"""The one polling loop, shared by ``wait``, ``watch``, ``run`` and fan-out.

The first poll comes soon (most short predictions finish within a second), then the
interval grows geometrically to a cap: a long prediction costs a handful of requests a
minute instead of a fixed 0.5 s hammer. Polls are ordinary GETs, so they also go through
the client's rate limiter. An unknown status ends the loop with an error, never a hang.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import attrs

from .errors import UnknownStatusError, WaitTimeoutError
from .types import Prediction, Status

__all__ = ["PollPolicy", "poll"]


@attrs.frozen(kw_only=True)
class PollPolicy:
    """Seconds between polls: ``first``, then times ``factor`` each time, at most ``cap``."""

    first: float = attrs.field(default=0.25, validator=attrs.validators.gt(0))
    factor: float = attrs.field(default=1.5, validator=attrs.validators.ge(1))
    cap: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))

    def intervals(self) -> Iterator[float]:
        """The endless schedule of waits between polls."""
        interval = min(self.first, self.cap)
        while True:
            yield interval
            interval = min(self.cap, interval * self.factor)


def _fingerprint(p: Prediction) -> tuple[str, object, object]:
    # What a watcher cares about. Output may be an unhashable list, so compare by value.
    return (p.status, p.output, p.logs)


async def poll(
    first: Prediction,
    fetch: Callable[[str], Awaitable[Prediction]],
    policy: PollPolicy,
    sleep: Callable[[float], Awaitable[None]],
    *,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Prediction]:
    """Yield ``first`` and then every changed snapshot, ending at a terminal status.

    Raises :class:`UnknownStatusError` for a status outside :data:`Status.KNOWN`, and
    :class:`WaitTimeoutError` when ``timeout`` seconds pass without a terminal status.
    """
    deadline = None if timeout is None else clock() + timeout
    current = first
    last: tuple[str, object, object] | None = None
    intervals = policy.intervals()
    while True:
        if current.status not in Status.KNOWN:
            raise UnknownStatusError(
                f"Prediction {current.id} has status {current.status!r}, which this version "
                "of replicate_async does not know; stopped polling rather than guess. "
                "Upgrade replicate_async, or inspect error.prediction.",
                prediction=current,
            )
        fingerprint = _fingerprint(current)
        if fingerprint != last:
            last = fingerprint
            yield current
        if current.status in Status.TERMINAL:
            return
        delay = next(intervals)
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                raise WaitTimeoutError(
                    f"Prediction {current.id} is still {current.status} after {timeout:g} s; "
                    "it keeps running. Wait again, or cancel it with "
                    f"client.predictions.cancel({current.id!r}).",
                    prediction=current,
                )
            delay = min(delay, left)
        await sleep(delay)
        current = await fetch(current.id)
