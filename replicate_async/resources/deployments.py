"""``client.deployments``: deployments and their predictions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._create import Creator
from .._session import Session
from ..pagination import AsyncPager, list_pages
from ..protocol.creates import CreateOptions
from ..protocol.refs import deployment_target, split_owner_name
from ..types import Deployment, Prediction
from ._base import CreatingResource, Resource

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..protocol.creates import CreateArgs

__all__ = ["DeploymentPredictions", "Deployments"]


class DeploymentPredictions(CreatingResource):
    """``client.deployments.predictions``: run a deployment."""

    __slots__ = ()

    async def create(
        self,
        deployment: str,
        input: Mapping[str, Any] | None = None,
        *,
        stream: bool | None = None,
        **options: Unpack[CreateArgs],
    ) -> Prediction:
        """Create a prediction on ``owner/name``'s current release (options as in run())."""
        target = deployment_target(deployment)
        create = CreateOptions(input=input, stream=stream, **options)
        return await self._creator.create(target, create, Prediction)


class Deployments(Resource):
    """Deployments: a fixed version on dedicated hardware."""

    __slots__ = ("predictions",)

    def __init__(self, session: Session, creator: Creator) -> None:
        super().__init__(session)
        self.predictions = DeploymentPredictions(session, creator)

    async def get(self, deployment: str) -> Deployment:
        """One deployment and its current release."""
        owner, name = split_owner_name(deployment, "deployment")
        return await self._session.request_json(
            "GET", f"/deployments/{quote(owner)}/{quote(name)}", Deployment
        )

    def list(self) -> AsyncPager[Deployment]:
        """Your deployments, a page at a time."""
        return list_pages(self._session, "/deployments", Deployment)
