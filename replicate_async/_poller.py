"""The client's one polling loop: every prediction anyone waits for, polled by one task.

``wait``, ``watch``, ``run`` and ``run_many`` subscribe here instead of each running a
loop of their own. One task (started on the first subscription, gone when nothing is
waited for, stopped with the client) asks the pure
:class:`~.protocol.polling.PollPlanner` what to do, sweeps ``GET /predictions`` pages or
GETs single predictions, and hands each new snapshot to the subscribers of its
prediction. Thousands of waiting predictions cost one task and a request rate the
planner keeps inside its share of the limit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from datetime import datetime

from ._session import Session
from ._transport import spawn_detached
from .errors import (
    ClientClosedError,
    RateLimitError,
    ReplicateError,
    ServerError,
    SharedLimiterError,
    TransportError,
    UnknownStatusError,
)
from .pagination import list_pages
from .protocol.creates import older_than
from .protocol.polling import Idle, PollPlanner, Sweep
from .protocol.refs import job_id
from .types import Prediction, Status

__all__ = ["Poller", "Subscription", "get_prediction"]

#: poll failures that may pass (the request path already retried each; a shared limiter
#: whose Redis is away a moment says nothing of the prediction)
_PASSING = (TransportError, ServerError, RateLimitError, SharedLimiterError)
#: polls of one prediction failing in a row before its wait ends with the error
_MAX_POLL_FAILURES = 3


async def get_prediction(session: Session, prediction_id: str) -> Prediction:
    """``GET /predictions/{id}``."""
    return await session.request_json("GET", f"/predictions/{job_id(prediction_id)}", Prediction)


class Subscription:
    """One waiter's view of one prediction: its new snapshots, in order, then the end.

    Items are snapshots that are news (status, output or logs changed), the last one
    terminal, or the error that ended the wait. ``close()`` (also on drop) stops it.
    """

    __slots__ = ("__weakref__", "_items", "_poller", "_wakeup", "closed", "prediction_id")

    def __init__(self, poller: Poller, prediction_id: str) -> None:
        self._poller = poller
        self.prediction_id = prediction_id
        self._items: collections.deque[Prediction | BaseException] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, item: Prediction | BaseException) -> None:
        """Hand the waiter a snapshot or an error (the poller calls this)."""
        self._items.append(item)
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def get(self, deadline: float | None = None) -> Prediction | None:
        """The next snapshot; None if ``deadline`` (monotonic) passes first. Raises errors."""
        session = self._poller.session
        while not self._items:
            loop = asyncio.get_running_loop()
            wakeup = self._wakeup = loop.create_future()
            if deadline is None:
                await wakeup
                continue
            left = deadline - session.timing.monotonic()
            if left <= 0:
                return None
            # The injected sleep, so that waits with a timeout run on fake time in tests.
            sleeper = asyncio.ensure_future(session.sleep(left))
            try:
                await asyncio.wait({wakeup, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
        item = self._items.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop waiting; the prediction is no longer polled once nobody waits for it."""
        if not self.closed:
            self.closed = True
            self._poller.unsubscribe(self)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class Poller:
    """Polls every prediction the client waits for, in one task, inside a request budget."""

    __slots__ = (
        "_closed",
        "_planner",
        "_sleeper",
        "_sources",
        "_subscribers",
        "_task",
        "session",
    )

    def __init__(self, session: Session) -> None:
        self.session = session
        config = session.config
        rate = config.polling.share * config.rate_limits.other_per_minute / 60.0
        self._planner = PollPlanner(config.polling, rate=rate, now=session.timing.monotonic())
        self._subscribers: dict[str, list[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._sleeper: asyncio.Future[None] | None = None
        self._closed = False
        # Where news of predictions comes without a request (webhook receivers): asked
        # on each subscription, for what came before anyone waited.
        self._sources: list[Callable[[str], Prediction | None]] = []

    # -- subscribers ---------------------------------------------------------------------

    def expected_runtime(self, key: str) -> float | None:
        """The run time seen so far for a model (``key``), if any."""
        return self._planner.expected_runtime(key)

    def learn(self, key: str, prediction: Prediction) -> None:
        """Learn a model's run time from a prediction that finished without being polled."""
        self._planner.learn(key, prediction)

    @property
    def closed(self) -> bool:
        """Whether the client it polls for was closed."""
        return self._closed

    def attach_source(self, source: Callable[[str], Prediction | None]) -> None:
        """Ask ``source(id)`` for news of each prediction waited for from now on.

        A webhook receiver is one: a delivery that came before the wait began (a fast
        prediction's end can overtake its create's reply) ends the wait at once.
        """
        if source not in self._sources:
            self._sources.append(source)

    def push(self, snapshot: Prediction) -> bool:
        """News that came without a poll (a webhook): handled as a poll's answer would be.

        True when it ended a wait (someone here was waiting for that prediction).
        """
        waited = snapshot.id in self._planner
        self._deliver(snapshot)
        return waited and snapshot.done

    def subscribe(self, snapshot: Prediction, key: str, *, quiet: float = 0.0) -> Subscription:
        """Wait for ``snapshot``'s prediction: its later snapshots come to the subscription.

        ``quiet``: poll it no more often than that (its news is expected by webhook).
        """
        if self._closed:
            raise ClientClosedError(
                "This AsyncReplicate client is closed; create a new one to wait for "
                f"prediction {snapshot.id}."
            )
        subscription = Subscription(self, snapshot.id)
        self._subscribers.setdefault(snapshot.id, []).append(subscription)
        now = self.session.timing.monotonic()
        try:
            self._planner.add(snapshot, key, now, quiet=quiet)
        except UnknownStatusError as error:
            self._end(snapshot.id, error)
            return subscription
        if snapshot.id not in self._planner:  # it has ended already: nothing to poll
            self._end(snapshot.id, snapshot)
            return subscription
        for source in self._sources:
            known = source(snapshot.id)
            if known is not None:
                self._deliver(known)
                if snapshot.id not in self._planner:
                    return subscription  # the news ended it
        self._kick()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """A waiter left (sync: safe from ``__del__``)."""
        waiting = self._subscribers.get(subscription.prediction_id)
        if waiting is None:
            return
        with contextlib.suppress(ValueError):
            waiting.remove(subscription)
        if not waiting:
            del self._subscribers[subscription.prediction_id]
            self._planner.remove(subscription.prediction_id)

    def _end(self, prediction_id: str, item: Prediction | BaseException) -> None:
        for subscription in self._subscribers.pop(prediction_id, []):
            subscription.put(item)
        self._planner.remove(prediction_id)

    def _deliver(self, snapshot: Prediction) -> None:
        if snapshot.id not in self._planner:
            return
        try:
            news = self._planner.observe(snapshot, self.session.timing.monotonic())
        except UnknownStatusError as error:
            self._end(snapshot.id, error)
            return
        if snapshot.done:
            self._end(snapshot.id, snapshot)
        elif news:
            # A copy: a waiter dropped by the garbage collector may leave at any moment.
            for subscription in list(self._subscribers.get(snapshot.id, ())):
                subscription.put(snapshot)

    # -- the loop ------------------------------------------------------------------------

    def _kick(self) -> None:
        """Start the loop, or wake it to look at a new subscription."""
        if self._task is None or self._task.done():
            self._task = spawn_detached(self._run())
        elif self._sleeper is not None:
            self._sleeper.cancel()

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as error:  # a bug here must end the waits, not hang them
            for prediction_id, waiting in list(self._subscribers.items()):
                for subscription in waiting:
                    # One error each: a single one raised in many tasks would grow a
                    # traceback from all of them.
                    subscription.put(
                        ReplicateError(
                            f"Polling for prediction {prediction_id} stopped: "
                            f"{type(error).__name__}: {error}. This is a bug in "
                            "replicate_async; please report it."
                        )
                    )
                self._subscribers.pop(prediction_id, None)
                self._planner.remove(prediction_id)
            raise

    async def _loop(self) -> None:
        planner, clock = self._planner, self.session.timing.monotonic
        share = self.session.config.polling.share
        other = self.session.limiter.other.bucket
        while self._subscribers:
            # A share of what the limiter allows now: a stated or cut limit shrinks it too.
            planner.set_rate(share * other.rate, clock())
            action = planner.next_action(clock())
            if isinstance(action, Idle):
                if action.until is None:
                    return
                await self._nap(action.until - clock())
            elif isinstance(action, Sweep):
                await self._sweep(action)
            else:
                await asyncio.gather(*(self._single(pid) for pid in action.ids))
            # Whatever an action left unsettled is polled again: no wait can be forgotten.
            planner.settle(clock())

    async def _nap(self, seconds: float) -> None:
        # Interruptible: a new subscription cancels the nap (not the loop) to be seen at once.
        sleeper = self._sleeper = asyncio.ensure_future(self.session.sleep(max(0.0, seconds)))
        try:
            await asyncio.wait({sleeper})
        finally:
            self._sleeper = None
            sleeper.cancel()

    async def _single(self, prediction_id: str) -> None:
        try:
            snapshot = await get_prediction(self.session, prediction_id)
        except ReplicateError as error:
            # The request path retried what it could. A reply that may be better next
            # time (garbled, lost, a busy server) is polled again a few more times: the
            # prediction is likely running fine. Anything else ends the wait.
            passing = isinstance(error, _PASSING)
            now = self.session.timing.monotonic()
            if passing and self._planner.failed(prediction_id, now) <= _MAX_POLL_FAILURES:
                return
            self._end(prediction_id, error)
            return
        self._deliver(snapshot)

    async def _sweep(self, sweep: Sweep) -> None:
        planner, clock = self._planner, self.session.timing.monotonic
        wanted = set(sweep.ids)
        pager = list_pages(
            self.session,
            "/predictions",
            Prediction,
            params={
                "created_after": sweep.since.isoformat(),
                "created_before": sweep.until.isoformat(),
            },
        )
        complete = False  # read back past ``since``: what it did not see, it cannot see
        reached: datetime | None = None  # the oldest creation time the pages showed
        failed: list[str] = []
        try:
            for _ in range(sweep.pages):
                if not wanted or not planner.spend(clock()):
                    break
                page = await pager.next_page()
                if page is None:
                    complete = True
                    break
                for snapshot in page.results:
                    created = snapshot.created_at
                    if created is not None and (reached is None or created < reached):
                        reached = created
                    if snapshot.id not in planner:
                        continue  # a prediction nobody here waits for
                    wanted.discard(snapshot.id)
                    if snapshot.status == Status.FAILED and snapshot.logs is None:
                        # List pages leave logs out; a failure's logs say why: get it whole.
                        failed.append(snapshot.id)
                    else:
                        self._deliver(snapshot)
                if older_than(page.results, sweep.since) or not page.next:
                    complete = True
                    break
        except ReplicateError:
            pass  # what the sweep did not settle is polled again
        planner.missed(wanted, clock(), complete=complete, reached=reached)
        if failed:
            await asyncio.gather(*(self._single(pid) for pid in failed))

    async def aclose(self) -> None:
        """Stop polling; whoever still waits gets :class:`ClientClosedError`."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for prediction_id in list(self._subscribers):
            for subscription in self._subscribers.pop(prediction_id, []):
                # One error each: one raised in many tasks would grow a shared traceback.
                subscription.put(
                    ClientClosedError(
                        f"The client was closed while prediction {prediction_id} was awaited."
                    )
                )
            self._planner.remove(prediction_id)
