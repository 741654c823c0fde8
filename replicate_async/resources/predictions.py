"""``client.predictions``: create, get, cancel, list, wait for and watch predictions."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from .._aiter import AsyncIteratorHandle
from ..pagination import AsyncPager
from ..polling import poll
from ..refs import Target, deployment_target, model_target, version_target
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


def _not_json(value: Any) -> Any:
    raise TypeError(
        f"input value of type {type(value).__name__} is not JSON: pass strings, numbers, "
        "booleans, lists and dicts (for a file, upload it somewhere and pass its URL)."
    )


def encode_input(input: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check that ``input`` is a JSON-able mapping; a bad one fails before any request."""
    if input is None:
        return {}
    if not isinstance(input, Mapping):
        raise TypeError(f"input must be a dict of the model's inputs, got {type(input).__name__}")
    data = dict(input)
    json.dumps(data, default=_not_json)
    return data


def _id_of(prediction: Prediction | str) -> str:
    if isinstance(prediction, Prediction):
        return prediction.id
    if not isinstance(prediction, str) or not prediction.strip() or "/" in prediction:
        raise ValueError(f"Invalid prediction id {prediction!r}")
    return prediction.strip()


class Predictions(Resource):
    """Predictions: one run of a model each."""

    __slots__ = ()

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
    ) -> Prediction:
        body: dict[str, Any] = {**target.body, "input": encode_input(input)}
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
        return await self._client.request_json(
            "POST",
            target.path,
            Prediction,
            json_body=body,
            headers=headers,
            is_create=True,
            prefer_wait=wait,
        )

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
