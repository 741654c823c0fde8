"""Polling decisions, sans I/O: one planner for every prediction a client waits for.

The client's poller (``_poller.py``) asks :class:`PollPlanner` what to do next and does
it; the planner never reads a clock or sends anything. Its rules:

- each prediction is polled when it is likely to have changed: its first poll comes
  after the run time seen for its model so far (``first`` for a model not seen yet),
  later polls back off with its age (each wait ``factor`` times the last, up to
  ``cap``): a long prediction costs a handful of requests a minute;
- when many are due at once it **sweeps**: ``GET /predictions`` pages (newest first, 100
  a page, status and output included) from the newest back to the oldest due one, which
  settles up to 100 predictions a request, instead of one GET each; what a sweep cannot
  reach (too old for the pages it may read, or not in them) gets single GETs;
- every request, sweep page or single GET, spends a token of the poller's own budget,
  ``share`` of the general rate limit, so the polls of any number of predictions leave
  the rest of the limit to the user's own calls;
- an unknown status ends the wait with an error, never a hang.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import attrs

from ..errors import UnknownStatusError
from ..types import Prediction, Status
from .limits import TokenBucket

__all__ = ["Idle", "PollPlanner", "PollPolicy", "Singles", "Sweep"]

#: the API's page size for lists
PAGE_SIZE = 100
#: how much of a model's run time to let pass before its first poll
_FIRST_POLL_SHARE = 0.9
#: weight of the newest run time in a model's running average
_RUNTIME_WEIGHT = 0.3
#: sweep back this much further than the oldest due prediction (server clocks differ)
_SWEEP_SKEW = timedelta(seconds=1)
#: sweeps cut short that may miss a prediction before it is polled singly: a straggler
#: behind many finished predictions costs a page each time, a single GET once
_MAX_MISSES = 2


@attrs.frozen(kw_only=True)
class PollPolicy:
    """When to poll, and how much of the rate limit polling may use.

    ``first``: the first poll of a prediction whose model's run time is not known yet;
    then each wait ``factor`` times the one before (``first + age * (factor - 1)``), at
    most ``cap`` seconds. ``share``: the part of the general rate limit
    (``RateLimits.other_per_minute``) that all polling together may spend. ``sweep_at``:
    how many predictions waited for at once make ``GET /predictions`` sweeps worth it;
    ``sweep_every``: the least time between two sweeps (results may come that much later
    than a poll each would give them).
    """

    first: float = attrs.field(default=0.25, validator=attrs.validators.gt(0))
    factor: float = attrs.field(default=1.5, validator=attrs.validators.gt(1))
    cap: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    share: float = attrs.field(
        default=0.5, validator=[attrs.validators.gt(0), attrs.validators.le(1)]
    )
    sweep_at: int = attrs.field(default=4, validator=attrs.validators.ge(2))
    sweep_every: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))

    def intervals(self) -> Iterator[float]:
        """The waits between polls of one prediction of an unknown model, one by one."""
        age = 0.0
        while True:
            wait = self.next_wait(age)
            yield wait
            age += wait

    def next_wait(self, age: float) -> float:
        """Seconds from now to the next poll of a prediction ``age`` seconds into its wait.

        ``first + age * (factor - 1)``, at most ``cap``: the waits grow by ``factor``
        each time (0.25, 0.375, 0.56 ... by default), whenever the wait began.
        """
        return min(self.cap, self.first + age * (self.factor - 1))


@attrs.frozen
class Sweep:
    """Page through ``GET /predictions?created_after=since&created_before=until``.

    At most ``pages`` pages. The window holds the predictions due now, and no newer
    ones: those would only be read to be skipped. ``ids`` are the predictions it is
    meant to settle: report those it did not see with :meth:`PollPlanner.missed`.
    """

    since: datetime
    until: datetime
    pages: int
    ids: tuple[str, ...]


@attrs.frozen
class Singles:
    """``GET /predictions/{id}`` for each of these."""

    ids: tuple[str, ...]


@attrs.frozen
class Idle:
    """Nothing to do before ``until`` (monotonic seconds).

    None: nothing is due until something is added or reported back (nothing waits, or
    all of it is in flight).
    """

    until: float | None


Action = Sweep | Singles | Idle


def _fingerprint(p: Prediction, logs: object = None) -> tuple[str, object, object]:
    # What a watcher cares about. Output may be an unhashable list, so compare by value.
    # List pages (sweeps) leave logs out: then the logs known so far stand for them.
    return (p.status, p.output, logs if p.logs is None else p.logs)


@attrs.define(eq=False)
class _Entry:
    id: str
    key: str
    created: datetime | None
    started: float  # monotonic: when the wait began
    due: float
    fingerprint: tuple[str, object, object]
    misses: int = 0  # sweeps cut short that were meant to settle it
    failures: int = 0  # polls in a row that failed (a bad reply, a lost connection)
    quiet: float = 0.0  # the least time between polls (a webhook is expected meanwhile)


class PollPlanner:
    """Every waiting prediction of one client, and what to ask the server next.

    ``rate`` is the requests a second all polling may spend (its burst is a quarter
    of a second's worth, so that no second ever sees much more than the rate). Feed it
    snapshots with :meth:`observe`; ask :meth:`next_action`; report what a sweep did not
    see with :meth:`missed`, and call :meth:`settle` after every action.
    """

    __slots__ = (
        "_budget",
        "_dated",
        "_entries",
        "_heap",
        "_last_sweep",
        "_resume_before",
        "_runtimes",
        "policy",
    )

    def __init__(self, policy: PollPolicy, *, rate: float, now: float) -> None:
        self.policy = policy
        self._budget = TokenBucket(rate, max(1.0, rate / 4), now=now)
        self._entries: dict[str, _Entry] = {}
        # (due, id) pairs; stale ones (an entry rescheduled or gone) are skipped lazily
        self._heap: list[tuple[float, str]] = []
        self._runtimes: dict[str, float] = {}
        self._last_sweep = -math.inf
        self._dated = 0  # entries a sweep can see (their creation time is known)
        # Where a sweep cut short (out of budget) stopped: the next one goes on from there
        # (older first), so the oldest are never the ones always left out.
        self._resume_before: datetime | None = None

    # -- what is waited for -------------------------------------------------------------

    def __contains__(self, prediction_id: object) -> bool:
        return prediction_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def expected_runtime(self, key: str) -> float | None:
        """The running average of the run times seen for ``key`` (a model), if any."""
        return self._runtimes.get(key)

    def add(self, snapshot: Prediction, key: str, now: float, *, quiet: float = 0.0) -> None:
        """Start waiting for ``snapshot``'s prediction (a model ``key`` for its run times).

        ``quiet``: poll it no more often than that (seconds): its news is expected to
        come another way (a webhook), and polls are only the safety net.
        """
        if snapshot.id in self._entries or snapshot.status in Status.TERMINAL:
            return
        self._check(snapshot)
        expected = self._runtimes.get(key)
        first = self.policy.first
        if expected is not None:
            # It is unlikely to be done before its model usually is.
            first = max(first, expected * _FIRST_POLL_SHARE)
        entry = _Entry(
            snapshot.id,
            key,
            snapshot.created_at,
            now,
            now + max(first, quiet),
            _fingerprint(snapshot),
            quiet=quiet,
        )
        self._entries[entry.id] = entry
        self._dated += entry.created is not None
        heapq.heappush(self._heap, (entry.due, entry.id))

    def remove(self, prediction_id: str) -> None:
        """Stop waiting for a prediction (nobody wants it any more)."""
        self._drop(prediction_id)

    def _drop(self, prediction_id: str) -> _Entry | None:
        entry = self._entries.pop(prediction_id, None)
        if entry is not None and entry.created is not None:
            self._dated -= 1
        return entry

    @staticmethod
    def _check(snapshot: Prediction) -> None:
        if snapshot.status not in Status.KNOWN:
            raise UnknownStatusError(
                f"Prediction {snapshot.id} has status {snapshot.status!r}, which this version "
                "of replicate_async does not know; stopped polling rather than guess. "
                "Upgrade replicate_async, or inspect error.prediction.",
                prediction=snapshot,
            )

    def observe(self, snapshot: Prediction, now: float) -> bool:
        """Take a snapshot of a waited-for prediction; True when it is news.

        News is a change of status, output or logs. A terminal snapshot ends its wait
        (and teaches the model's run time); otherwise the next poll is scheduled by age.
        Raises :class:`UnknownStatusError` (and ends the wait) for an unknown status.
        """
        entry = self._entries.get(snapshot.id)
        if entry is None:
            return False
        try:
            self._check(snapshot)
        except UnknownStatusError:
            self._drop(snapshot.id)
            raise
        entry.failures = 0
        fingerprint = _fingerprint(snapshot, entry.fingerprint[2])
        news = fingerprint != entry.fingerprint
        entry.fingerprint = fingerprint
        if snapshot.status in Status.TERMINAL:
            self._drop(snapshot.id)
            self._learn(entry.key, snapshot)
            return True
        entry.due = now + max(entry.quiet, self.policy.next_wait(now - entry.started))
        heapq.heappush(self._heap, (entry.due, entry.id))
        return news

    def _learn(self, key: str, snapshot: Prediction) -> None:
        if snapshot.status != Status.SUCCEEDED or not snapshot.created_at:
            return
        if not snapshot.completed_at:
            return
        seconds = (snapshot.completed_at - snapshot.created_at).total_seconds()
        if seconds < 0:
            return
        known = self._runtimes.get(key)
        self._runtimes[key] = (
            seconds if known is None else known + _RUNTIME_WEIGHT * (seconds - known)
        )

    def learn(self, key: str, snapshot: Prediction) -> None:
        """Learn a model's run time from a prediction that ended without being polled."""
        if snapshot.status in Status.TERMINAL:
            self._learn(key, snapshot)

    # -- what to do next ----------------------------------------------------------------

    def _due(self, now: float) -> list[_Entry]:
        heap, entries = self._heap, self._entries
        due: list[_Entry] = []
        while heap and heap[0][0] <= now:
            when, pid = heapq.heappop(heap)
            entry = entries.get(pid)
            if entry is not None and entry.due == when:
                due.append(entry)
        return due

    def _next_due(self) -> float | None:
        heap, entries = self._heap, self._entries
        while heap:
            when, pid = heap[0]
            entry = entries.get(pid)
            if entry is not None and entry.due == when:
                return when
            heapq.heappop(heap)  # stale
        return None

    def next_action(self, now: float) -> Action:
        """What the poller should do now: sweep, single GETs, or wait."""
        due = self._due(now)
        if not due:
            return Idle(self._next_due())
        policy, budget = self.policy, self._budget
        # The bucket counts 0.999999999 as a token (float refills): so does this, or it
        # would idle "until now" for ever.
        tokens = int(budget.available(now) + 1e-9)
        singles = due
        # Sweep mode while many predictions a sweep can see are waited for: then the
        # due ones wait for the next sweep instead of trickling out one GET each.
        if self._dated >= policy.sweep_at:
            dated = [e for e in due if e.created is not None]
            singles = [e for e in due if e.created is None]
            resuming = self._resume_before is not None
            if dated and tokens >= 1 and (resuming or now - self._last_sweep >= policy.sweep_every):
                # A page settles up to 100 at a time, a single GET one: sweep the window
                # of the due ones, but never spend more pages than singles would cost.
                until = max(e.created for e in dated if e.created is not None) + _SWEEP_SKEW
                if self._resume_before is not None:
                    # On from where the last sweep stopped (created_before is strict).
                    until = min(until, self._resume_before)
                covered = [e for e in dated if e.created is not None and e.created <= until]
                if covered:
                    self._last_sweep = now
                    self._resume_before = None
                    covered_ids = {e.id for e in covered}
                    for entry in covered:
                        entry.due = math.inf  # in flight: observe() or missed() reschedules
                    self._put_back(e for e in due if e.id not in covered_ids)
                    pages = max(1, min(tokens, math.ceil(len(covered) / 2)))
                    oldest = min(e.created for e in covered if e.created is not None)
                    return Sweep(oldest - _SWEEP_SKEW, until, pages, tuple(e.id for e in covered))
                self._resume_before = None  # nothing due left back there
            self._put_back(dated)
        chosen = singles[:tokens]
        self._put_back(singles[tokens:])
        if not chosen:
            wake = self._next_due()
            if singles:  # out of budget
                wake = now + budget.delay(now)
            elif self._dated >= policy.sweep_at:
                wake = max(self._last_sweep + policy.sweep_every, now + budget.delay(now))
            return Idle(wake)
        for entry in chosen:
            budget.take(now)
            entry.due = math.inf  # in flight: observe() or missed() reschedules
        return Singles(tuple(e.id for e in chosen))

    def _put_back(self, entries: Iterable[_Entry]) -> None:
        for entry in entries:
            heapq.heappush(self._heap, (entry.due, entry.id))

    def set_rate(self, rate: float, now: float) -> None:
        """Follow the request budget's rate (a share of the limit the limiter keeps now)."""
        if rate > 0 and rate != self._budget.rate:
            self._budget.set_rate(now, rate)
            self._budget.set_capacity(max(1.0, rate / 4))

    def spend(self, now: float) -> bool:
        """Spend a token for a sweep page; False when the budget is out (stop paging)."""
        return self._budget.take(now)

    def settle(self, now: float) -> None:
        """After an action: anything still marked in flight is due now (never forgotten)."""
        # A copy: a waiter dropped by the garbage collector may leave at any moment.
        for entry in list(self._entries.values()):
            if entry.due == math.inf:
                entry.due = now
                heapq.heappush(self._heap, (now, entry.id))

    def failed(self, prediction_id: str, now: float) -> int:
        """A poll of it failed: try again after a backoff. Returns the failures in a row.

        One bad reply must not end a wait whose prediction is running fine; the caller
        ends it when the failures keep coming.
        """
        entry = self._entries.get(prediction_id)
        if entry is None:
            return 0
        entry.failures += 1
        policy = self.policy
        entry.due = now + min(policy.cap, policy.first * 2**entry.failures)
        heapq.heappush(self._heap, (entry.due, entry.id))
        return entry.failures

    def missed(
        self,
        prediction_ids: Iterable[str],
        now: float,
        *,
        complete: bool,
        reached: datetime | None = None,
    ) -> None:
        """A sweep meant to settle these did not see them: poll them again now.

        ``complete``: the sweep read its whole window, so they are not where a sweep can
        see them: from now on they go singly. Otherwise it was cut short (out of budget)
        having read back to ``reached``: the next sweep goes on from there, and one
        missed twice that way goes singly too.
        """
        missed = [
            entry
            for pid in prediction_ids
            if (entry := self._entries.get(pid)) is not None and entry.due == math.inf
        ]
        if missed and not complete and reached is not None:
            self._resume_before = reached
        for entry in missed:
            entry.due = now
            # Only a sweep that read back past it and did not see it counts against it:
            # one it never reached says nothing about it.
            passed = reached is not None and entry.created is not None and entry.created >= reached
            if complete or passed:
                entry.misses += 1
            if entry.created is not None and (complete or entry.misses >= _MAX_MISSES):
                entry.created = None
                self._dated -= 1
            heapq.heappush(self._heap, (now, entry.id))
