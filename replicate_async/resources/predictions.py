"""``client.predictions``: create, get, cancel, list, wait for and watch predictions."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from .._aiter import AsyncIteratorHandle
from ..errors import CreateOutcomeUnknownError, MalformedResponseError, ReplicateError
from ..files import FileInput, prepare_input
from ..pagination import AsyncPager
from ..polling import poll
from ..refs import Target, deployment_target, model_target, version_target
from ..streaming import PredictionStream, StreamPolicy
from ..types import Prediction
from ._base import Resource

__all__ = ["Predictions", "encode_input", "format_cancel_after"]

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MIN_CANCEL_AFTER = 5
_MAX_CANCEL_AFTER = 24 * 3600


def format_cancel_after(value: str | float | timedelta) -> str:
    """Validate a ``Cancel-After`` duration (5 s to 24 h) and write it as the API wants."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        text = f"{int(seconds)}s"
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text)
        if text.isdigit():
            seconds = float(text)
        elif match and text:
            h, m, s = (int(g or 0) for g in match.groups())
            seconds = h * 3600 + m * 60 + s
        else:
            raise ValueError(
                f"Invalid cancel_after {value!r}: use seconds (30) or a duration like '30s', "
                "'5m', '1h30m45s'."
            )
    else:
        raise TypeError(f"cancel_after must be seconds or a duration string, got {value!r}")
    if not _MIN_CANCEL_AFTER <= seconds <= _MAX_CANCEL_AFTER:
        raise ValueError(f"cancel_after must be between 5 seconds and 24 hours, got {value!r}")
    return text


def encode_input(input: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check that ``input`` is a mapping (values that are not JSON fail before sending)."""
    if input is None:
        return {}
    if not isinstance(input, Mapping):
        raise TypeError(f"input must be a dict of the model's inputs, got {type(input).__name__}")
    return dict(input)


def _id_of(prediction: Prediction | str) -> str:
    if isinstance(prediction, Prediction):
        return prediction.id
    if not isinstance(prediction, str) or not prediction.strip() or "/" in prediction:
        raise ValueError(f"Invalid prediction id {prediction!r}")
    return prediction.strip()


class _Claims:
    """Ids of predictions this client created or recovered.

    Recovering an unknown create never adopts a prediction that another call of ours
    owns. Ids older than ``horizon`` seconds are forgotten: recovery looks back less.
    """

    __slots__ = ("_ids", "horizon")

    def __init__(self, horizon: float = 600.0) -> None:
        self._ids: dict[str, float] = {}
        self.horizon = horizon

    def add(self, prediction_id: str) -> None:
        now = time.monotonic()
        self._ids[prediction_id] = now
        if len(self._ids) % 1024 == 0:
            # dicts keep insertion order: the oldest come first
            stale = [k for k, t in self._ids.items() if now - t > self.horizon]
            for key in stale:
                del self._ids[key]

    def __contains__(self, prediction_id: object) -> bool:
        return prediction_id in self._ids


#: how far before our own "sent" time a recovered prediction may have been created
#: (server and client clocks differ)
_CLOCK_SKEW = timedelta(seconds=30)
#: waits between looks for a prediction whose create had an unknown outcome
_RECOVERY_WAITS = (0.2, 0.5, 1.0)


class Predictions(Resource):
    """Predictions: one run of a model each."""

    __slots__ = ("_claims",)

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self._claims = _Claims()

    async def create(
        self,
        *,
        version: str | None = None,
        model: str | None = None,
        deployment: str | None = None,
        input: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        webhook_events_filter: Iterable[str] | None = None,
        stream: bool | None = None,
        wait: bool | float = False,
        cancel_after: str | float | timedelta | None = None,
        file_encoding: str = "upload",
    ) -> Prediction:
        """Create a prediction for exactly one of ``version``, ``model`` or ``deployment``.

        ``version`` is a version id or ``owner/name:id``; ``model`` an ``owner/name``
        official model; ``deployment`` an ``owner/name`` deployment. ``wait=True`` (or
        seconds, 1-60) sends ``Prefer: wait`` so the reply may already be finished.
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
        return await self._create_target(
            target,
            input,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            stream=stream,
            wait=wait,
            cancel_after=cancel_after,
            file_encoding=file_encoding,
        )

    async def _create_target(
        self,
        target: Target,
        input: Mapping[str, Any] | None,
        *,
        webhook: str | None = None,
        webhook_events_filter: Iterable[str] | None = None,
        stream: bool | None = None,
        wait: bool | float = False,
        cancel_after: str | float | timedelta | None = None,
        file_encoding: str = "upload",
    ) -> Prediction:
        # Files in the input are uploaded (or inlined) first: the one step that reads them.
        prepared = await prepare_input(
            encode_input(input), self._upload, file_encoding=file_encoding
        )
        body: dict[str, Any] = {**target.body, "input": prepared}
        if webhook is not None:
            body["webhook"] = webhook
        if webhook_events_filter is not None:
            if isinstance(webhook_events_filter, str):
                raise TypeError("webhook_events_filter must be a list like ['completed']")
            body["webhook_events_filter"] = list(webhook_events_filter)
        if stream is not None:
            body["stream"] = bool(stream)
        headers = {}
        if cancel_after is not None:
            headers["Cancel-After"] = format_cancel_after(cancel_after)
        if not isinstance(wait, bool) and not 1 <= float(wait) <= 60:
            raise ValueError(f"wait must be True, False or 1-60 seconds, got {wait!r}")
        try:
            prediction = await self._client.request_json(
                "POST",
                target.path,
                Prediction,
                json_body=body,
                headers=headers,
                is_create=True,
                prefer_wait=wait,
            )
        except CreateOutcomeUnknownError as error:
            if not self._client.config.retry.recover_creates:
                raise
            found = await self._recover(target, body, error)
            if found is None:
                error.message += (
                    " No matching prediction was found in predictions.list(), so it was "
                    "probably not created; it was still not re-sent, to be safe."
                )
                error.args = (error.message,)
                raise
            prediction = found
        self._claims.add(prediction.id)
        return prediction

    async def _upload(self, file: FileInput) -> str:
        uploaded = await self._client.files.upload(file)
        url = (uploaded.urls or {}).get("get")
        if not url:
            raise MalformedResponseError(f"POST /files: the reply for {file.name!r} has no URL")
        return url

    async def _recover(
        self, target: Target, body: dict[str, Any], error: CreateOutcomeUnknownError
    ) -> Prediction | None:
        """Find what an unknown create made: same input and version, recent, not ours yet."""
        since = error.sent_after - _CLOCK_SKEW if error.sent_after else None
        version = target.body.get("version")
        for wait in _RECOVERY_WAITS:
            # The create may still be in the server's hands: give it a moment each time.
            await self._client._sleep(wait)
            try:
                async with self.list(created_after=since) as pager:
                    async for candidate in pager:
                        if (
                            candidate.id not in self._claims
                            and candidate.input == body["input"]
                            and (version is None or candidate.version == version)
                        ):
                            return candidate
            except ReplicateError:
                return None  # cannot look: report the original error
        return None

    async def get(self, id: str) -> Prediction:
        """The current state of a prediction."""
        return await self._client.request_json("GET", f"/predictions/{_id_of(id)}", Prediction)

    async def cancel(self, id: Prediction | str) -> Prediction:
        """Ask for a prediction to stop; returns its state (``canceled`` once it has)."""
        return await self._client.request_json(
            "POST", f"/predictions/{_id_of(id)}/cancel", Prediction
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
        return self._pager("/predictions", Prediction, {k: v for k, v in params.items() if v})

    async def wait(
        self, prediction: Prediction | str, *, timeout: float | None = None
    ) -> Prediction:
        """Poll until the prediction ends and return its last state (whatever the status)."""
        last: Prediction | None = None
        async for snapshot in self._watch(prediction, timeout):
            last = snapshot
        assert last is not None
        return last

    def stream(
        self, prediction: Prediction | str, *, policy: StreamPolicy | None = None
    ) -> PredictionStream:
        """Stream the events of an existing prediction (created with ``stream=True``)."""
        pid = _id_of(prediction)

        async def start() -> Prediction:
            if isinstance(prediction, Prediction) and prediction.urls and prediction.urls.stream:
                return prediction
            return await self.get(pid)

        return PredictionStream(self._client, start, policy)

    def watch(
        self, prediction: Prediction | str, *, timeout: float | None = None
    ) -> AsyncIteratorHandle[Prediction]:
        """Yield each new state (status, output or logs changed), ending at a terminal one."""
        return AsyncIteratorHandle(self._watch(prediction, timeout))

    async def _watch(
        self, prediction: Prediction | str, timeout: float | None
    ) -> AsyncGenerator[Prediction, None]:
        first = prediction if isinstance(prediction, Prediction) else await self.get(prediction)
        client = self._client
        async for snapshot in poll(
            first, self.get, client.config.polling, client._sleep, timeout=timeout
        ):
            yield snapshot


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()
