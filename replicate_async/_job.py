"""One ``run_many`` job: each input created, waited for and decoded, journaled if asked.

``client.run_many`` builds a :class:`Job` and hands its :meth:`Job.one` to the fan-out
(:mod:`.fanout`), which runs it once per input under its concurrency bound. Without a
journal or a webhook receiver it is create, wait, decode. With a journal
(:mod:`.journal`) every step is recorded before it is acted upon, and a journal from an
earlier run decides what is replayed, adopted, looked for or created. With a receiver
(:mod:`.receiver`) creates carry its URL and the waits leave the predictions to it,
polling only those whose webhook is late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import attrs

from ._create import Creator
from ._janitor import Janitor
from ._poller import Poller
from ._session import Session
from ._watch import wait_for
from .errors import CreateOutcomeUnknownError, ReplicateError
from .fanout import Track
from .journal import Journal, fingerprint
from .protocol import convert
from .protocol.creates import CreateOptions
from .protocol.refs import Target
from .receiver import Receiver
from .types import Prediction, Status

__all__ = ["Job"]


class Job:
    """The work of one ``run_many`` call, and its journal's hooks (see the module)."""

    __slots__ = (
        "_creator",
        "_janitor",
        "_poller",
        "_session",
        "cancel_on_exit",
        "journal",
        "output_of",
        "receiver",
        "replay",
        "target",
        "template",
        "timeout",
    )

    def __init__(
        self,
        *,
        session: Session,
        creator: Creator,
        poller: Poller,
        janitor: Janitor,
        target: Target,
        template: CreateOptions,
        output_of: Callable[[Prediction], Any],
        timeout: float | None,
        cancel_on_exit: bool,
        journal: Journal | None = None,
        replay: bool = True,
        receiver: Receiver | None = None,
    ) -> None:
        self._session = session
        self._creator = creator
        self._poller = poller
        self._janitor = janitor
        self.target = target
        self.template = template
        self.output_of = output_of
        self.timeout = timeout
        self.cancel_on_exit = cancel_on_exit
        self.journal = journal
        self.replay = replay
        self.receiver = receiver

    # -- the job's hooks ---------------------------------------------------------------

    async def start(self) -> None:
        """Before the first input: open the journal, settle its lost creates, attach."""
        if self.receiver is not None:
            await self.receiver._attach(self._session, self._poller)
        journal = self.journal
        if journal is None:
            return
        await journal.open(self.target.label)
        try:
            await self._settle_lost(journal)
        except BaseException:
            journal.close()
            raise

    async def _settle_lost(self, journal: Journal) -> None:
        """Creates an earlier run sent and never heard back from: adopted, or to be made.

        All of them before any new create: a create of this run with the same input
        must not be mistaken for one of them.
        """
        lost = journal.lost()
        if not lost:
            return
        sent = {i: (e.sent, e.sent_input or {}) for i, e in lost.items() if e.sent is not None}
        try:
            found = await self._creator.find_lost(
                self.target, sent, Prediction, claimed=journal.ids()
            )
        except ReplicateError as error:
            raise CreateOutcomeUnknownError(
                f"{len(sent)} create(s) of the run before this one may have reached the "
                f"server, and looking for them failed ({error}); nothing was created. Run "
                "the job again with the same journal to look again.",
                sent_after=None,
                sent_before=None,
            ) from error
        for index in sorted(lost):
            if index in found:
                await journal.created(index, found[index].id)
            else:
                await journal.nothing(index)

    async def taken(self, index: int) -> None:
        """The caller is done with input ``index``'s result."""
        if self.journal is not None:
            await self.journal.taken(index)

    def close(self) -> None:
        """The run is over, whichever way."""
        if self.journal is not None:
            self.journal.close()

    # -- one input ---------------------------------------------------------------------

    async def one(
        self, index: int, item: Mapping[str, Any], track: Track
    ) -> tuple[Prediction | None, Any]:
        """Run input ``index`` to its end: its last state and decoded output."""
        journal = self.journal
        if journal is None:
            prediction = await self._create(item, None)
            track.running()
            return await self._finish(prediction, quiet=self._quiet)
        fp = fingerprint(item)
        entry = journal.check(index, fp)
        if entry is not None and entry.done is not None:
            if entry.taken and not self.replay:
                track.skip()
                journal.entries.pop(index, None)
                return None, None
            track.replayed = True
            prediction = convert.structure(entry.done, Prediction)
            return prediction, self.output_of(prediction)
        if entry is not None and entry.id is not None:
            # Created by an earlier run: adopted, and polled (its webhook, if it had one,
            # went to that run's receiver).
            prediction = Prediction(id=entry.id, status=Status.STARTING)
            quiet = 0.0
        else:
            prediction = await self._create(item, (index, fp))
            quiet = self._quiet
        track.running()
        return await self._finish(prediction, quiet=quiet, index=index)

    @property
    def _quiet(self) -> float:
        return 0.0 if self.receiver is None else self.receiver.grace

    async def _create(
        self, item: Mapping[str, Any], journaled: tuple[int, str] | None
    ) -> Prediction:
        create = attrs.evolve(self.template, input=item)
        creator, journal = self._creator, self.journal
        if journaled is None or journal is None:
            return await creator.create(
                self.target, create, Prediction, cancel_on_exit=self.cancel_on_exit
            )
        index, fp = journaled
        recorded = False

        async def record(body: dict[str, Any]) -> None:
            nonlocal recorded
            # The send's time by the client's clock: the next run's search starts there.
            await journal.sending(index, fp, body["input"], at=self._session.timing.wall())
            recorded = True

        try:
            prediction = await creator.create(
                self.target,
                create,
                Prediction,
                cancel_on_exit=self.cancel_on_exit,
                before_send=record,
            )
        except CreateOutcomeUnknownError:
            raise  # it may exist: the next run looks for it
        except asyncio.CancelledError:
            if recorded and self.cancel_on_exit:
                # The job stops and cancels what its create made (found and cancelled in
                # the background): the next run makes it again.
                _detached(journal.nothing(index))
            raise
        except ReplicateError:
            if recorded:
                # Refused (a 422, a 402, throttled past retries): provably nothing was
                # made, and the next run creates it without looking.
                await _shielded(journal.nothing(index))
            raise
        # Recorded before anything waits on it: a death from here on leaves its id.
        await _shielded(journal.created(index, prediction.id))
        return prediction

    async def _finish(
        self, prediction: Prediction, *, quiet: float, index: int | None = None
    ) -> tuple[Prediction, Any]:
        if not prediction.done:
            try:
                prediction = await wait_for(
                    self._poller,
                    prediction,
                    key=self.target.label,
                    timeout=self.timeout,
                    janitor=self._janitor if self.cancel_on_exit else None,
                    quiet=quiet,
                )
            except asyncio.CancelledError:
                if self.journal is not None and index is not None and self.cancel_on_exit:
                    # The job cancels it on the way out: the next run must make it
                    # again, not collect a canceled prediction.
                    _detached(self.journal.nothing(index))
                raise
        if self.journal is not None and index is not None:
            await self.journal.done(index, _record(prediction))
        return prediction, self.output_of(prediction)


def _shielded(write: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
    """A journal write that finishes even if its caller is cancelled meanwhile."""
    return asyncio.shield(_detached(write))


def _detached(write: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A journal write of its own: it starts before the calling task can end.

    (Its outcome is read here, so that a write that could no longer land, the journal
    having closed, is not reported as an exception nobody retrieved.)
    """
    task = asyncio.ensure_future(write)
    task.add_done_callback(_retrieve)
    return task


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def _record(prediction: Prediction) -> dict[str, Any]:
    """A prediction as a journal line keeps it: the API's keys, nulls left out."""
    data: dict[str, Any] = convert.converter.unstructure(prediction)
    urls = data.get("urls")
    if isinstance(urls, dict):
        data["urls"] = {key: value for key, value in urls.items() if value is not None}
    return {key: value for key, value in data.items() if value is not None}
