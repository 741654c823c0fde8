"""Polling decisions, sans I/O: which snapshot is news, when to look again, when to stop.

The first poll comes soon (most short predictions finish within a second), then the
interval grows geometrically to a cap: a long prediction costs a handful of requests a
minute instead of a fixed 0.5 s hammer. An unknown status ends the wait with an error,
never a hang; a wait with a timeout ends with :class:`WaitTimeoutError` when it runs out.
The loop that sleeps and fetches is ``_watch.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from ..errors import UnknownStatusError, WaitTimeoutError
from ..types import Prediction, Status

__all__ = ["PollPolicy", "PollState"]


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


class PollState:
    """Where one wait for a prediction stands. Feed it snapshots; ask it when to look again."""

    __slots__ = ("_deadline", "_intervals", "_last", "_timeout", "current")

    def __init__(self, policy: PollPolicy, *, timeout: float | None, now: float) -> None:
        self._intervals = policy.intervals()
        self._timeout = timeout
        self._deadline = None if timeout is None else now + timeout
        self._last: tuple[str, object, object] | None = None
        #: the latest snapshot seen
        self.current: Prediction | None = None

    @property
    def done(self) -> bool:
        """The latest snapshot is terminal: nothing will change any more."""
        return self.current is not None and self.current.status in Status.TERMINAL

    def observe(self, snapshot: Prediction) -> bool:
        """Take a snapshot; True when it differs from the last one (status, output, logs).

        Raises :class:`UnknownStatusError` for a status outside :data:`Status.KNOWN`.
        """
        if snapshot.status not in Status.KNOWN:
            raise UnknownStatusError(
                f"Prediction {snapshot.id} has status {snapshot.status!r}, which this version "
                "of replicate_async does not know; stopped polling rather than guess. "
                "Upgrade replicate_async, or inspect error.prediction.",
                prediction=snapshot,
            )
        self.current = snapshot
        fingerprint = _fingerprint(snapshot)
        if fingerprint == self._last:
            return False
        self._last = fingerprint
        return True

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next poll; raises :class:`WaitTimeoutError` if out of time."""
        delay = next(self._intervals)
        if self._deadline is None:
            return delay
        left = self._deadline - now
        if left <= 0:
            current = self.current
            assert current is not None, "observe() a snapshot before asking for the next poll"
            raise WaitTimeoutError(
                f"Prediction {current.id} is still {current.status} after {self._timeout:g} s; "
                "it keeps running. Wait again, or cancel it with "
                f"client.predictions.cancel({current.id!r}).",
                prediction=current,
            )
        return min(delay, left)
