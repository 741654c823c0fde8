"""``client.trainings``: fine-tune a model version into a destination model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..pagination import AsyncPager, list_pages
from ..protocol.creates import CreateOptions
from ..protocol.refs import job_id, training_target
from ..types import Training
from ._base import CreatingResource

__all__ = ["Trainings"]


class Trainings(CreatingResource):
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
