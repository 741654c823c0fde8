"""``client.trainings``: fine-tune a model version into a destination model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ..pagination import AsyncPager
from ..refs import split_owner_name
from ..types import Training
from ._base import Resource
from .predictions import encode_input

__all__ = ["Trainings"]


class Trainings(Resource):
    """Trainings: create, get, cancel and list them."""

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
    ) -> Training:
        """Train ``model`` at ``version`` into ``destination`` (``owner/name``)."""
        owner, name = split_owner_name(model)
        split_owner_name(destination, "destination")
        body: dict[str, Any] = {"destination": destination, "input": encode_input(input)}
        if webhook is not None:
            body["webhook"] = webhook
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = list(webhook_events_filter)
        path = f"/models/{quote(owner)}/{quote(name)}/versions/{quote(version)}/trainings"
        # Trainings are not among the three prediction-create endpoints: the general limit.
        return await self._client.request_json("POST", path, Training, json_body=body)

    async def get(self, id: str) -> Training:
        """The current state of a training."""
        return await self._client.request_json("GET", f"/trainings/{quote(id)}", Training)

    async def cancel(self, id: str) -> Training:
        """Stop a training."""
        return await self._client.request_json("POST", f"/trainings/{quote(id)}/cancel", Training)

    def list(self) -> AsyncPager[Training]:
        """Your trainings, newest first."""
        return self._pager("/trainings", Training)
