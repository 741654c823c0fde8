"""``client.models``: models (create, update, delete), versions, examples, README, search."""

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
from ._base import CreatingResource, Resource, choice, optional_strings

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
            "GET", f"{_path(model)}/versions/{_version_id(version_id)}", Version
        )

    async def delete(self, model: str, version_id: str) -> None:
        """Ask for a version to be deleted (accepted at once, done within minutes).

        Replicate deletes only versions of your private models that nobody else has
        run, that no deployment or training uses; it answers otherwise with the reason.
        """
        await self._session.request("DELETE", f"{_path(model)}/versions/{_version_id(version_id)}")


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

    def list(
        self, *, sort_by: str | None = None, sort_direction: str | None = None
    ) -> AsyncPager[Model]:
        """All public models (and yours), a page at a time.

        ``sort_by``: ``"latest_version_created_at"`` (the server's default) or
        ``"model_created_at"``; ``sort_direction``: ``"desc"`` (default) or ``"asc"``.
        """
        params = {
            "sort_by": choice("sort_by", sort_by, _SORT_BY),
            "sort_direction": choice("sort_direction", sort_direction, _DIRECTIONS),
        }
        return list_pages(self._session, "/models", Model, params=params)

    def search(self, query: str) -> AsyncPager[Model]:
        """Models matching ``query`` (``QUERY /models`` with a plain-text body).

        ``client.search()`` is the newer search: models with scores, collections, pages.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a non-empty query string")
        return list_pages(self._session, "/models", Model, query=query)

    async def create(
        self,
        model: str,
        *,
        visibility: str,
        hardware: str,
        description: str | None = None,
        github_url: str | None = None,
        paper_url: str | None = None,
        license_url: str | None = None,
        cover_image_url: str | None = None,
    ) -> Model:
        """Create ``owner/name`` (no versions yet: push one with Cog).

        ``owner`` must be the account the token belongs to; ``visibility`` is
        ``"public"`` or ``"private"``; ``hardware`` a SKU from ``client.hardware.list()``.
        """
        owner, name = split_owner_name(model)
        body: dict[str, Any] = {
            "owner": owner,
            "name": name,
            "visibility": choice("visibility", visibility, _VISIBILITY, required=True),
            "hardware": _sku(hardware),
            **optional_strings(
                description=description,
                github_url=github_url,
                paper_url=paper_url,
                license_url=license_url,
                cover_image_url=cover_image_url,
            ),
        }
        return await self._session.request_json("POST", "/models", Model, json_body=body)

    async def update(
        self,
        model: str,
        *,
        description: str | None = None,
        readme: str | None = None,
        github_url: str | None = None,
        paper_url: str | None = None,
        license_url: str | None = None,
        weights_url: str | None = None,
    ) -> Model:
        """Change a model's page: only the fields given are sent (``""`` empties one)."""
        body = optional_strings(
            description=description,
            readme=readme,
            github_url=github_url,
            paper_url=paper_url,
            license_url=license_url,
            weights_url=weights_url,
        )
        if not body:
            raise ValueError(
                "models.update needs at least one of description, readme, github_url, "
                "paper_url, license_url, weights_url"
            )
        return await self._session.request_json("PATCH", _path(model), Model, json_body=body)

    async def delete(self, model: str) -> None:
        """Delete a model: Replicate allows it for your private models with no versions."""
        await self._session.request("DELETE", _path(model))

    def examples(self, model: str) -> AsyncPager[Prediction]:
        """The predictions the model's author shows as examples, a page at a time."""
        return list_pages(self._session, f"{_path(model)}/examples", Prediction)

    async def readme(self, model: str) -> str:
        """The model's README, in Markdown (``NotFoundError`` if it has none)."""
        reply = await self._session.request(
            "GET", f"{_path(model)}/readme", headers={"Accept": "text/plain"}
        )
        return reply.body.decode("utf-8", "replace")


_SORT_BY = ("latest_version_created_at", "model_created_at")
_DIRECTIONS = ("desc", "asc")
_VISIBILITY = ("public", "private")


def _version_id(version_id: str) -> str:
    if not isinstance(version_id, str) or not version_id.strip() or "/" in version_id:
        raise ValueError(f"a version id is a string like the 64 hex digits, got {version_id!r}")
    return quote(version_id)


def _sku(hardware: str) -> str:
    if not isinstance(hardware, str) or not hardware.strip():
        raise ValueError(
            f"hardware must be a SKU like 'cpu' or 'gpu-t4' (see client.hardware.list()), "
            f"got {hardware!r}"
        )
    return hardware
