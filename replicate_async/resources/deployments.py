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
from ._base import CreatingResource, Resource, optional_strings

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
        return await self._session.request_json("GET", _path(deployment), Deployment)

    def list(self) -> AsyncPager[Deployment]:
        """Your deployments, a page at a time."""
        return list_pages(self._session, "/deployments", Deployment)

    async def create(
        self,
        name: str,
        *,
        model: str,
        version: str,
        hardware: str,
        min_instances: int,
        max_instances: int,
    ) -> Deployment:
        """Deploy ``model`` at ``version`` on ``hardware`` as deployment ``name``.

        The deployment belongs to the token's account, so ``name`` is the bare name
        (``"prod"``, then ``client.deployments.get("<account>/prod")``). It scales
        between ``min_instances`` (0-5) and ``max_instances`` (0-20).
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if "/" in name:
            raise ValueError(
                f"deployments.create takes the bare name, not {name!r}: a deployment "
                "belongs to the token's account (pass 'prod', not 'acme/prod')"
            )
        split_owner_name(f"owner/{name}", "deployment name")  # not empty, no odd characters
        split_owner_name(model)
        body: dict[str, Any] = {
            "name": name,
            "model": model,
            **optional_strings(version=version, hardware=hardware),
            "min_instances": _instances("min_instances", min_instances, 5),
            "max_instances": _instances("max_instances", max_instances, 20),
        }
        if min_instances > max_instances:
            raise ValueError(
                f"min_instances ({min_instances}) is more than max_instances ({max_instances})"
            )
        return await self._session.request_json("POST", "/deployments", Deployment, json_body=body)

    async def update(
        self,
        deployment: str,
        *,
        version: str | None = None,
        hardware: str | None = None,
        min_instances: int | None = None,
        max_instances: int | None = None,
    ) -> Deployment:
        """Change a deployment: a new release with only the given fields changed."""
        body: dict[str, Any] = optional_strings(version=version, hardware=hardware)
        if min_instances is not None:
            body["min_instances"] = _instances("min_instances", min_instances, 5)
        if max_instances is not None:
            body["max_instances"] = _instances("max_instances", max_instances, 20)
        if not body:
            raise ValueError(
                "deployments.update needs at least one of version, hardware, min_instances, "
                "max_instances"
            )
        return await self._session.request_json(
            "PATCH", _path(deployment), Deployment, json_body=body
        )

    async def delete(self, deployment: str) -> None:
        """Delete a deployment (Replicate requires it offline and unused for 15 minutes)."""
        await self._session.request("DELETE", _path(deployment))


def _path(deployment: str) -> str:
    owner, name = split_owner_name(deployment, "deployment")
    return f"/deployments/{quote(owner)}/{quote(name)}"


def _instances(name: str, value: Any, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise ValueError(f"{name} must be a whole number from 0 to {most}, got {value!r}")
    return value
