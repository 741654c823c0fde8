"""``client.models``: models, their versions, search, and predictions of official models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._create import Creator
from .._session import Session
from ..pagination import AsyncPager, list_pages
from ..protocol.creates import CreateOptions
from ..protocol.refs import model_target, split_owner_name
from ..types import Model, Prediction, Version
from ._base import CreatingResource, Resource

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ..protocol.creates import CreateArgs

__all__ = ["ModelPredictions", "Models", "Versions"]


def _path(ref: str) -> str:
    owner, name = split_owner_name(ref)
    return f"/models/{quote(owner)}/{quote(name)}"


class Versions(Resource):
    """``client.models.versions``: the immutable builds of a model."""

    __slots__ = ()

    def list(self, model: str) -> AsyncPager[Version]:
        """A model's versions, newest first."""
        return list_pages(self._session, f"{_path(model)}/versions", Version)

    async def get(self, model: str, version_id: str) -> Version:
        """One version, with its OpenAPI schema."""
        return await self._session.request_json(
            "GET", f"{_path(model)}/versions/{quote(version_id)}", Version
        )


class ModelPredictions(CreatingResource):
    """``client.models.predictions``: run an official model without naming a version."""

    __slots__ = ()

    async def create(
        self,
        model: str,
        input: Mapping[str, Any] | None = None,
        *,
        stream: bool | None = None,
        **options: Unpack[CreateArgs],
    ) -> Prediction:
        """Create a prediction of ``owner/name`` (``POST /models/{owner}/{name}/predictions``)."""
        target = model_target(model)
        create = CreateOptions(input=input, stream=stream, **options)
        return await self._creator.create(target, create, Prediction)


class Models(Resource):
    """Models: get, list and search them."""

    __slots__ = ("predictions", "versions")

    def __init__(self, session: Session, creator: Creator) -> None:
        super().__init__(session)
        self.versions = Versions(session)
        self.predictions = ModelPredictions(session, creator)

    async def get(self, model: str) -> Model:
        """One model, with its latest version and default example."""
        return await self._session.request_json("GET", _path(model), Model)

    def list(self) -> AsyncPager[Model]:
        """All public models (and yours), a page at a time."""
        return list_pages(self._session, "/models", Model)

    def search(self, query: str) -> AsyncPager[Model]:
        """Models matching ``query`` (``QUERY /models`` with a plain-text body)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a non-empty query string")
        return list_pages(self._session, "/models", Model, query=query)
