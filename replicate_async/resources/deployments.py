"""``client.deployments``: deployments and their predictions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from ..pagination import AsyncPager
from ..refs import deployment_target, split_owner_name
from ..types import Deployment, Prediction
from ._base import Resource

__all__ = ["DeploymentPredictions", "Deployments"]


class DeploymentPredictions(Resource):
    """``client.deployments.predictions``: run a deployment."""

    __slots__ = ()

    async def create(
        self,
        deployment: str,
        input: Mapping[str, Any] | None = None,
        *,
        webhook: str | None = None,
        webhook_events_filter: Iterable[str] | None = None,
        stream: bool | None = None,
        wait: bool | float = False,
        cancel_after: str | float | timedelta | None = None,
        file_encoding: str = "upload",
    ) -> Prediction:
        """Create a prediction on ``owner/name``'s current release."""
        return await self._client.predictions._create_target(
            deployment_target(deployment),
            input,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            stream=stream,
            wait=wait,
            cancel_after=cancel_after,
            file_encoding=file_encoding,
        )


class Deployments(Resource):
    """Deployments: a fixed version on dedicated hardware."""

    __slots__ = ("predictions",)

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.predictions = DeploymentPredictions(client)

    async def get(self, deployment: str) -> Deployment:
        """One deployment and its current release."""
        owner, name = split_owner_name(deployment, "deployment")
        return await self._client.request_json(
            "GET", f"/deployments/{quote(owner)}/{quote(name)}", Deployment
        )

    def list(self) -> AsyncPager[Deployment]:
        """Your deployments, a page at a time."""
        return self._pager("/deployments", Deployment)
