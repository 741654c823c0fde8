"""``client.models``: models, their versions, search, and predictions of official models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from ..pagination import AsyncPager
from ..refs import model_target, split_owner_name
from ..types import Model, Page, Prediction, Version
from ._base import Resource

__all__ = ["ModelPredictions", "Models", "Versions"]


def _path(ref: str) -> str:
    owner, name = split_owner_name(ref)
    return f"/models/{quote(owner)}/{quote(name)}"


class Versions(Resource):
    """``client.models.versions``: the immutable builds of a model."""

    __slots__ = ()

    def list(self, model: str) -> AsyncPager[Version]:
        """A model's versions, newest first."""
        return self._pager(f"{_path(model)}/versions", Version)

    async def get(self, model: str, version_id: str) -> Version:
        """One version, with its OpenAPI schema."""
        return await self._client.request_json(
            "GET", f"{_path(model)}/versions/{quote(version_id)}", Version
        )


class ModelPredictions(Resource):
    """``client.models.predictions``: run an official model without naming a version."""

    __slots__ = ()

    async def create(
        self,
        model: str,
        input: Mapping[str, Any] | None = None,
        *,
        webhook: str | None = None,
        webhook_events_filter: Iterable[str] | None = None,
        stream: bool | None = None,
        wait: bool | float = False,
        cancel_after: str | float | timedelta | None = None,
        file_encoding: str = "upload",
    ) -> Prediction:
        """Create a prediction of ``owner/name`` (``POST /models/{owner}/{name}/predictions``)."""
        return await self._client.predictions._create_target(
            model_target(model),
            input,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            stream=stream,
            wait=wait,
            cancel_after=cancel_after,
            file_encoding=file_encoding,
        )


class Models(Resource):
    """Models: get, list and search them."""

    __slots__ = ("predictions", "versions")

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.versions = Versions(client)
        self.predictions = ModelPredictions(client)

    async def get(self, model: str) -> Model:
        """One model, with its latest version and default example."""
        return await self._client.request_json("GET", _path(model), Model)

    def list(self) -> AsyncPager[Model]:
        """All public models (and yours), a page at a time."""
        return self._pager("/models", Model)

    def search(self, query: str) -> AsyncPager[Model]:
        """Models matching ``query`` (``QUERY /models`` with a plain-text body)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a non-empty query string")
        client = self._client

        async def fetch(url: str | None) -> Page[Model]:
            if url is None:
                return await client.request_json(
                    "QUERY",
                    "/models",
                    Page[Model],
                    content=query.encode(),
                    content_type="text/plain",
                )
            return await client.request_json("GET", url, Page[Model])

        return AsyncPager(fetch)
