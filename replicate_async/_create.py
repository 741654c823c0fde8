"""The one create path: every prediction and training starts here.

``predictions.create``, ``models.predictions.create``, ``deployments.predictions.create``,
``trainings.create``, ``run``, ``stream`` and ``run_many`` all call :meth:`Creator.create`
with a target (:mod:`.protocol.refs`) and checked :class:`CreateOptions`. It prepares
the input's files (the only step that reads local files), decides whether holding the
create open (``Prefer: wait``) pays, sends it through the session's request path (which
never re-sends a create that may have run), and, when the outcome is unknown, recovers
the prediction it may have made instead of losing it.

Whether holding a create open pays is :func:`~.protocol.creates.hold`'s decision: only
while at most half the pool is held that way, and not for models seen to run long. The
pool is never the bottleneck of a bulk job.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Container, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from ._janitor import Janitor
from ._poller import Poller
from ._session import Session
from .errors import CreateOutcomeUnknownError, MalformedResponseError, ReplicateError
from .files import FileInput, prepare_input, upload_url
from .pagination import AsyncPager, list_pages
from .protocol.creates import Claims, CreateOptions, find_created, hold, older_than
from .protocol.refs import Target
from .protocol.replies import Response
from .types import Page, Prediction, Training

__all__ = ["Creator"]

J = TypeVar("J", Prediction, Training)
#: hears a create's body just before it is sent (a job's journal records it there)
BeforeSend = Callable[[dict[str, Any]], Awaitable[None]]
K = TypeVar("K")

#: waits between looks for a prediction whose create had an unknown outcome
_RECOVERY_WAITS = (0.2, 0.5, 1.0)
#: waits before asking again for a page of a look that failed
_PAGE_RETRY_WAITS = (0.1, 0.3)


class Creator:
    """Creates predictions and trainings for one session, and remembers which are its own."""

    __slots__ = ("_held", "_janitor", "_poller", "_session", "claims")

    def __init__(self, session: Session, poller: Poller, janitor: Janitor, claims: Claims) -> None:
        self._session = session
        self._poller = poller
        self._janitor = janitor
        #: ids of what this client created (or adopted): never adopted twice
        self.claims = claims
        self._held = 0  # creates in the air with Prefer: wait

    async def create(
        self,
        target: Target,
        options: CreateOptions,
        cls: type[J],
        *,
        cancel_on_exit: bool = False,
        before_send: BeforeSend | None = None,
    ) -> J:
        """Create what ``target`` names, with ``options``; a ``cls`` (Prediction or Training).

        ``cancel_on_exit``: if the caller gives up (is cancelled) after the create left,
        what it made is found and cancelled in the background. ``before_send(body)`` is
        awaited with the body (files prepared) just before it is sent, once the rate
        limit lets it go; if it raises, nothing is sent.
        """
        session = self._session
        # Until this create (and any recovery of it) is over, claims it could need stay.
        token = self.claims.begin(session.timing.monotonic())
        try:
            return await self._create(target, options, cls, cancel_on_exit, before_send)
        finally:
            self.claims.end(token)

    async def _create(
        self,
        target: Target,
        options: CreateOptions,
        cls: type[J],
        cancel_on_exit: bool,
        before_send: BeforeSend | None,
    ) -> J:
        session = self._session
        # Files in the input are uploaded (or inlined) first: the one step that reads them.
        prepared = await prepare_input(
            options.input, self._upload, file_encoding=options.file_encoding
        )
        body = options.body(target, prepared)
        wait = hold(
            options.wait,
            held=self._held,
            max_connections=session.config.max_connections,
            expected_runtime=self._poller.expected_runtime(target.label),
        )
        sent: list[float] = []
        hook = None if before_send is None else functools.partial(before_send, body)
        self._held += wait is not False
        try:
            try:
                reply = await session.request(
                    "POST",
                    target.path,
                    json_body=body,
                    headers=options.headers(),
                    is_create=target.is_create,
                    prefer_wait=wait,
                    on_send=sent.append,
                    before_send=hook,
                )
            finally:
                self._held -= wait is not False
            job = self._decode(reply, cls, sent)
        except CreateOutcomeUnknownError as unknown:
            if not session.config.retry.recover_creates:
                raise
            job = await self._recover_or_abandon(target, body, cls, unknown, cancel_on_exit)
        except ReplicateError:
            raise
        except BaseException:
            if cancel_on_exit and sent:
                self._janitor.cancel_lost(target, body, _utc(sent[0]))
            raise
        self.claims.add(job.id, session.timing.monotonic())
        if isinstance(job, Prediction) and job.done:
            self._poller.learn(target.label, job)
        return job

    def _decode(self, reply: Response, cls: type[J], sent: list[float]) -> J:
        """The created job; a 2xx reply that cannot be read is a create to recover."""
        try:
            return self._session.decode(reply, cls)
        except MalformedResponseError as unreadable:
            error = unreadable
        # Raised outside the handler: the unreadable reply is the cause, nothing else.
        raise CreateOutcomeUnknownError.after(
            error,
            sent_after=_utc(sent[0]),
            sent_before=_utc(self._session.timing.wall()),
            created=True,
        ) from error

    async def _recover_or_abandon(
        self,
        target: Target,
        body: dict[str, Any],
        cls: type[J],
        unknown: CreateOutcomeUnknownError,
        cancel_on_exit: bool,
    ) -> J:
        try:
            return await self._recover(target, body, cls, unknown)
        except ReplicateError:
            raise
        except BaseException:
            if cancel_on_exit and unknown.sent_after is not None:
                self._janitor.cancel_lost(target, body, unknown.sent_after)
            raise

    async def find_lost(
        self,
        target: Target,
        sent: Mapping[K, tuple[float, Mapping[str, Any]]],
        cls: type[J],
        *,
        claimed: Container[str] = (),
    ) -> dict[K, J]:
        """What creates whose replies were never heard made, if anything: key to job.

        ``sent`` maps a key of the caller's to (the Unix time a create was sent, its
        input): creates sent by a process that died before the reply came (a job's
        journal knows they were sent, not what came of them). Looked for as a lost
        create is, in one pass over the recent list: the same target and input, created
        since the send (by the server's clock), not owned by this client or
        ``claimed``. Not before the last look a live recovery would have made has come.
        A look that keeps failing raises: nothing may be created again unchecked.
        """
        if not sent:
            return {}
        session, claims = self._session, self.claims
        first = min(at for at, _ in sent.values())
        last = max(at for at, _ in sent.values())
        # A create can still be on its way into the server for a moment after it left
        # (capped: a journal written by a machine whose clock ran ahead must not hang).
        settle = sum(_RECOVERY_WAITS)
        await session.sleep(min(settle, max(0.0, last + settle - session.timing.wall())))
        since = session.clock.since(_utc(first))
        owned = _Owned(self.claims, claimed)
        windows = {key: session.clock.since(_utc(at)) for key, (at, _) in sent.items()}
        found: dict[K, J] = {}
        token = claims.begin(session.timing.monotonic())
        try:
            params = {"created_after": since.isoformat()}
            pager = list_pages(session, target.list_path, cls, params=params)
            # The latest sent first: each takes the newest match its window allows, so
            # that identical inputs sent at different times each find their own.
            order = sorted(sent, key=lambda key: sent[key][0], reverse=True)
            while (page := await self._page(pager)) is not None:
                for key in order:
                    job_input = sent[key][1]
                    if key in found:
                        continue
                    body = {"input": dict(job_input)}
                    match = find_created(page.results, target, body, owned, since=windows[key])
                    if match is not None:
                        found[key] = match
                        claims.add(match.id, session.timing.monotonic())
                if len(found) == len(sent) or older_than(page.results, since):
                    break
        finally:
            claims.end(token)
        return found

    async def _upload(self, file: FileInput) -> str:
        return await upload_url(self._session, file)

    async def _recover(
        self,
        target: Target,
        body: dict[str, Any],
        cls: type[J],
        unknown: CreateOutcomeUnknownError,
    ) -> J:
        """Find what an unknown create made: same input and version, recent, not ours yet."""
        # By the server's clock, as its replies' Date headers bound it: a tight window,
        # so few pages to read (30 s back before any Date was seen).
        since = self._session.clock.since(unknown.sent_after) if unknown.sent_after else None
        params = {"created_after": since.isoformat() if since else None}
        failed: ReplicateError | None = None
        looked = False
        for wait in _RECOVERY_WAITS:
            # The create may still be in the server's hands: give it a moment each time.
            await self._session.sleep(wait)
            try:
                found = await self._look(target, body, cls, params, since)
            except ReplicateError as error:
                # A look that failed (a garbled page, a 5xx past its retries) is tried
                # again at the next wait: giving up here would lose a prediction that
                # ran, which the next look would most likely have found.
                failed = error
                continue
            looked = True
            if found is not None:
                return found
        cause = unknown.__cause__
        assert isinstance(cause, ReplicateError)
        raise CreateOutcomeUnknownError.after(
            cause,
            sent_after=unknown.sent_after,
            sent_before=unknown.sent_before,
            looked=looked,
            lookup_error=None if looked else failed,
            created=isinstance(cause, MalformedResponseError),
        ) from cause

    async def _look(
        self,
        target: Target,
        body: dict[str, Any],
        cls: type[J],
        params: dict[str, Any],
        since: datetime | None,
        claimed: Container[str] | None = None,
    ) -> J | None:
        claimed = self.claims if claimed is None else claimed
        pager = list_pages(self._session, target.list_path, cls, params=params)
        while (page := await self._page(pager)) is not None:
            found = find_created(page.results, target, body, claimed, since=since)
            # Lists come newest first: a page reaching back before the window ends it.
            if found is not None or older_than(page.results, since):
                return found
        return None

    async def _page(self, pager: AsyncPager[J]) -> Page[J] | None:
        """The next page of a look, asked for again if it fails (twice, then raised).

        A page can be garbled, or meet a 5xx past the request's own retries: a look that
        gave up at once could miss the prediction it looks for.
        """
        for wait in _PAGE_RETRY_WAITS:
            try:
                return await pager.next_page()
            except ReplicateError:
                await self._session.sleep(wait)
        return await pager.next_page()


class _Owned:
    """Ids owned already: the client's claims, and those another record holds."""

    __slots__ = ("_also", "_claims")

    def __init__(self, claims: Claims, also: Container[str]) -> None:
        self._claims = claims
        self._also = also

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._claims or job_id in self._also


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)
