"""``client.trainings``: fine-tune a model version into a destination model.

Waiting for a training is waiting for a prediction: Replicate runs trainings as
predictions (a training's own ``urls.get`` is ``/v1/predictions/{id}``), so ``wait`` and
``watch`` subscribe to the client's one poller, as predictions do, and hand back
:class:`~replicate_async.types.Training` snapshots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._aiter import AsyncClosing
from .._watch import PredictionWatch, wait_for
from ..pagination import AsyncPager, list_pages
from ..protocol.creates import CreateOptions
from ..protocol.refs import job_id, training_target
from ..types import Prediction, Training
from ._base import WaitingResource

__all__ = ["TrainingWatch", "Trainings"]

_FIELDS = tuple(field.name for field in attrs.fields(Prediction))


def _as_prediction(training: Training) -> Prediction:
    return Prediction(**{name: getattr(training, name) for name in _FIELDS})


def _as_training(prediction: Prediction) -> Training:
    return Training(**{name: getattr(prediction, name) for name in _FIELDS})


class TrainingWatch(AsyncClosing):
    """Each new state of a training, ending at a terminal one (``trainings.watch()``)."""

    __slots__ = ("_watch",)

    def __init__(self, watch: PredictionWatch) -> None:
        self._watch = watch

    def __aiter__(self) -> TrainingWatch:
        return self

    async def __anext__(self) -> Training:
        return _as_training(await self._watch.__anext__())

    async def aclose(self) -> None:
        """Stop watching."""
        await self._watch.aclose()


class Trainings(WaitingResource):
    """Trainings: create, get, cancel, list, wait for and watch them."""

    __slots__ = ()

    async def create(
        self,
        model: str,
        version: str,
        *,
        destination: str,
        input: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        webhook_events_filter: Iterable[str] | None = None,
        file_encoding: str = "upload",
    ) -> Training:
        """Train ``model`` at ``version`` into ``destination`` (``owner/name``).

        The input is checked and its files uploaded as for predictions; trainings count
        against the general rate limit, not the create limit.
        """
        target = training_target(model, version, destination)
        options = CreateOptions(
            input=input,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            file_encoding=file_encoding,
        )
        return await self._creator.create(target, options, Training)

    async def get(self, id: Training | str) -> Training:
        """The current state of a training."""
        return await self._session.request_json("GET", f"/trainings/{job_id(id)}", Training)

    async def cancel(self, id: Training | str) -> Training:
        """Stop a training."""
        return await self._session.request_json("POST", f"/trainings/{job_id(id)}/cancel", Training)

    def list(self) -> AsyncPager[Training]:
        """Your trainings, newest first."""
        return list_pages(self._session, "/trainings", Training)

    async def wait(
        self,
        training: Training | str,
        *,
        timeout: float | None = None,
        cancel_on_exit: bool = False,
    ) -> Training:
        """Wait until the training ends and return its last state (whatever the status).

        As ``predictions.wait``: ``timeout`` raises :class:`WaitTimeoutError` (it keeps
        running); ``cancel_on_exit=True`` cancels it if the caller gives up.
        """
        first = training if isinstance(training, Training) else await self.get(training)
        janitor = self._janitor if cancel_on_exit else None
        last = await wait_for(self._poller, _as_prediction(first), timeout=timeout, janitor=janitor)
        return _as_training(last)

    def watch(self, training: Training | str, *, timeout: float | None = None) -> TrainingWatch:
        """Yield each new state (status, output or logs changed), ending at a terminal one."""
        first = _as_prediction(training) if isinstance(training, Training) else job_id(training)
        return TrainingWatch(PredictionWatch(self._poller, first, timeout=timeout))
