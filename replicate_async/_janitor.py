"""Best-effort clean-up in the background: cancel the predictions nobody waits for any more.

When the task awaiting ``run()``, ``stream()`` or ``run_many()`` is cancelled, or a loop
over them breaks, the predictions they started keep running (and billing) on Replicate.
The janitor cancels them, in tasks of its own: the caller's cancellation is never
delayed, and never cancels the clean-up. Each cancel has a deadline; failures are
dropped (it is best effort). A create cancelled while its request was in the air has no
id yet: the janitor finds what it made in ``GET /predictions`` (same input and target,
created since it was sent, not claimed by another call), as a lost create is found,
and cancels that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

import attrs

from ._session import Session
from ._transport import spawn_detached
from .errors import ReplicateError
from .pagination import list_pages
from .protocol.creates import Claims, find_created, older_than
from .protocol.refs import Target, job_id
from .types import Prediction

__all__ = ["Janitor"]

#: no clean-up outlives this many seconds (the limiter's queue included)
_DEADLINE = 30.0
#: looks for creates that were cancelled in the air (the server may not have them yet)
_LOST_WAITS = (0.2, 0.5, 1.0, 2.0)
#: how long closing the client waits for clean-up still going
_CLOSE_WAIT = 5.0


@attrs.define
class _Lost:
    target: Target
    body: dict[str, Any]
    sent_after: datetime


class Janitor:
    """Cancels abandoned predictions for one client, in the background, within deadlines."""

    __slots__ = ("_claims", "_closed", "_lost", "_searching", "_session", "_tasks")

    def __init__(self, session: Session, claims: Claims) -> None:
        self._session = session
        self._claims = claims
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost: list[_Lost] = []
        self._searching = False
        self._closed = False

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if self._closed:  # the client is closing: its pool is going, nothing can be sent
            work.close()
            return
        try:
            task = spawn_detached(work)
        except RuntimeError:  # no loop any more (interpreter exit): nothing can be sent
            work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, prediction: Prediction | str) -> None:
        """Cancel a prediction soon (from sync code too); never raises."""
        self._spawn(self._cancel(job_id(prediction)))

    def cancel_lost(self, target: Target, body: dict[str, Any], sent_after: datetime) -> None:
        """Cancel whatever a create whose request was cut off in the air made, if anything."""
        if not target.is_create:
            return  # a training cannot be cancelled by this path
        self._lost.append(_Lost(target, body, sent_after))
        if not self._searching:
            # One search serves every create lost in the same moment (a run_many break).
            self._searching = True
            self._spawn(self._find_lost())

    async def _cancel(self, prediction_id: str) -> None:
        with contextlib.suppress(ReplicateError, asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(
                # Cancelling twice cancels once: retried like a read.
                self._session.request(
                    "POST", f"/predictions/{prediction_id}/cancel", idempotent=True
                ),
                _DEADLINE,
            )

    async def _find_lost(self) -> None:
        # While searching, the claims of other creates made since the lost ones left
        # must stay: adopting (and cancelling) another call's prediction would be worse
        # than missing the lost one. Began "then": as long ago as the oldest was sent.
        timing = self._session.timing
        age = timing.wall() - min(item.sent_after for item in self._lost).timestamp()
        token = self._claims.begin(timing.monotonic() - max(age, 0.0))
        try:
            # Each batch gets every look; creates lost during a search make the next batch.
            while self._lost:
                batch, self._lost = self._lost, []
                with contextlib.suppress(ReplicateError, asyncio.TimeoutError, TimeoutError):
                    await asyncio.wait_for(self._search(batch), _DEADLINE)
        finally:
            self._claims.end(token)
            self._searching = False
            self._lost = []  # what was not found by now is not coming (best effort)

    async def _search(self, lost: list[_Lost]) -> None:
        session = self._session
        for wait in _LOST_WAITS:
            await session.sleep(wait)
            since = session.clock.since(min(item.sent_after for item in lost))
            pager = list_pages(
                session, "/predictions", Prediction, params={"created_after": since.isoformat()}
            )
            while lost and (page := await pager.next_page()) is not None:
                for item in list(lost):
                    found = find_created(
                        page.results, item.target, item.body, self._claims, since=since
                    )
                    if found is not None:
                        lost.remove(item)
                        self._claims.add(found.id, session.timing.monotonic())
                        if not found.done:
                            self._spawn(self._cancel(found.id))
                if older_than(page.results, since):
                    break
            if not lost:
                return

    async def aclose(self) -> None:
        """Give clean-up still going a few seconds to finish, then stop it; refuse more."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CLOSE_WAIT
        # Clean-up may start more clean-up (a lost create found, then cancelled): wait
        # for all of it, within the deadline.
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left)
        self._closed = True
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
