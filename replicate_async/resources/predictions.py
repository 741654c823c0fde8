"""``client.predictions``: create, get, cancel, list, wait for and watch predictions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._watch import PredictionWatch, get_prediction, wait_for
from ..pagination import AsyncPager, list_pages
from ..protocol.creates import CreateOptions
from ..protocol.refs import deployment_target, job_id, model_target, version_target
from ..receiver import Receiver
from ..streaming import PredictionStream, StreamPolicy
from ..types import Prediction
from ._base import WaitingResource

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..protocol.creates import CreateArgs

__all__ = ["Predictions"]


class Predictions(WaitingResource):
    """Predictions: one run of a model each."""

    __slots__ = ()

    async def create(
        self,
        *,
        version: str | None = None,
        model: str | None = None,
        deployment: str | None = None,
        input: Mapping[str, Any] | None = None,
        stream: bool | None = None,
        **options: Unpack[CreateArgs],
    ) -> Prediction:
        """Create a prediction for exactly one of ``version``, ``model`` or ``deployment``.

        ``version`` is a version id or ``owner/name:id``; ``model`` an ``owner/name``
        official model; ``deployment`` an ``owner/name`` deployment. ``wait=True`` (or
        seconds, 1-60) sends ``Prefer: wait`` so the reply may already be finished; the
        other options (webhook, webhook_events_filter, cancel_after, file_encoding) are
        those of ``run()``.
        """
        given = [v for v in (version, model, deployment) if v is not None]
        if len(given) != 1:
            raise ValueError(
                "Pass exactly one of version='<id>' (or 'owner/name:<id>'), "
                "model='owner/name' or deployment='owner/name'."
            )
        if version is not None:
            target = version_target(version)
        elif model is not None:
            target = model_target(model)
        else:
            assert deployment is not None
            target = deployment_target(deployment)
        create = CreateOptions(input=input, stream=stream, **options)
        return await self._creator.create(target, create, Prediction)

    async def get(self, id: Prediction | str) -> Prediction:
        """The current state of a prediction."""
        return await get_prediction(self._session, job_id(id))

    async def cancel(self, id: Prediction | str) -> Prediction:
        """Ask for a prediction to stop; returns its state (``canceled`` once it has)."""
        return await self._session.request_json(
            "POST", f"/predictions/{job_id(id)}/cancel", Prediction
        )

    def list(
        self,
        *,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        source: str | None = None,
    ) -> AsyncPager[Prediction]:
        """Your predictions, newest first, fetched a page at a time as you iterate."""
        params = {
            "created_after": _iso(created_after),
            "created_before": _iso(created_before),
            "source": source,
        }
        return list_pages(self._session, "/predictions", Prediction, params=params)

    async def wait(
        self,
        prediction: Prediction | str,
        *,
        timeout: float | None = None,
        cancel_on_exit: bool = False,
        webhook: Receiver | None = None,
    ) -> Prediction:
        """Wait until the prediction ends and return its last state (whatever the status).

        ``timeout`` seconds without an end raise :class:`WaitTimeoutError` (it keeps
        running). ``cancel_on_exit=True`` cancels the prediction if the caller gives up
        (the awaiting task is cancelled); off by default, since ``wait`` did not start it.
        ``webhook``: the :class:`Receiver` its create's webhook points at; the wait then
        polls only if the webhook is later than the receiver's ``grace``.
        """
        quiet = 0.0
        if webhook is not None:
            await webhook._attach(self._session, self._poller)
            quiet = webhook.grace
        first = prediction if isinstance(prediction, Prediction) else await self.get(prediction)
        janitor = self._janitor if cancel_on_exit else None
        return await wait_for(self._poller, first, timeout=timeout, janitor=janitor, quiet=quiet)

    def watch(
        self, prediction: Prediction | str, *, timeout: float | None = None
    ) -> PredictionWatch:
        """Yield each new state (status, output or logs changed), ending at a terminal one."""
        return PredictionWatch(self._poller, prediction, timeout=timeout)

    def stream(
        self, prediction: Prediction | str, *, policy: StreamPolicy | None = None
    ) -> PredictionStream:
        """Stream the events of an existing prediction (created with ``stream=True``)."""
        pid = job_id(prediction)
        session, poller = self._session, self._poller

        async def start() -> Prediction:
            if isinstance(prediction, Prediction) and prediction.urls and prediction.urls.stream:
                return prediction
            return await get_prediction(session, pid)

        async def wait(p: Prediction) -> Prediction:
            return await wait_for(poller, p)

        return PredictionStream(session, start, wait, policy)


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()
