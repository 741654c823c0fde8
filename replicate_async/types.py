"""Inert, frozen payload classes for what the API returns; the converter builds them.

Server-owned values stay open: ``status`` is a plain ``str`` (compare with the
:class:`Status` constants), outputs and inputs are ``Any``. Every field the API may leave
out defaults to ``None``. The classes hold no client and do no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import attrs

__all__ = [
    "Account",
    "Collection",
    "Deployment",
    "DeploymentConfiguration",
    "DeploymentRelease",
    "File",
    "Hardware",
    "Model",
    "Page",
    "Prediction",
    "PredictionUrls",
    "Problem",
    "SearchCollection",
    "SearchMetadata",
    "SearchModel",
    "SearchPage",
    "SearchResults",
    "Status",
    "Training",
    "Version",
    "WebhookSecret",
]

T = TypeVar("T")


class Status:
    """The prediction statuses the API documents. The server may add more."""

    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"
    #: statuses after which nothing changes any more
    TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED, ABORTED})
    #: statuses of a prediction still on its way
    RUNNING = frozenset({STARTING, PROCESSING})
    KNOWN = TERMINAL | RUNNING


@attrs.frozen(kw_only=True)
class PredictionUrls:
    """Where to get, cancel, stream or view a prediction (``stream`` only when streaming)."""

    get: str | None = None
    cancel: str | None = None
    stream: str | None = None
    web: str | None = None


@attrs.frozen(kw_only=True)
class _Job:
    """The fields that predictions and trainings share."""

    id: str
    status: str
    model: str | None = None
    version: str | None = None
    input: dict[str, Any] | None = None
    output: Any = None
    logs: str | None = None
    error: Any = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    deadline: datetime | None = None
    data_removed: bool | None = None
    source: str | None = None
    metrics: dict[str, Any] | None = None
    urls: PredictionUrls | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    # Old payloads carry this instead of (or besides) webhook; kept so nothing is lost.
    webhook_completed: str | None = None
    deployment: str | None = None
    stream: bool | None = None

    @property
    def done(self) -> bool:
        """True once the status is terminal: nothing about it will change."""
        return self.status in Status.TERMINAL

    @property
    def predict_time(self) -> float | None:
        """Seconds the model ran, from ``metrics.predict_time``, if reported."""
        value = (self.metrics or {}).get("predict_time")
        return float(value) if isinstance(value, (int, float)) else None


@attrs.frozen(kw_only=True)
class Prediction(_Job):
    """One run of a model (``GET /predictions/{id}``)."""


@attrs.frozen(kw_only=True)
class Training(_Job):
    """One training job (``GET /trainings/{id}``); same shape as a prediction."""


@attrs.frozen(kw_only=True)
class Version:
    """A model version: an immutable build with its OpenAPI schema."""

    id: str
    created_at: datetime | None = None
    cog_version: str | None = None
    openapi_schema: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class Model:
    """A model (``GET /models/{owner}/{name}``)."""

    owner: str
    name: str
    url: str | None = None
    description: str | None = None
    visibility: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    run_count: int | None = None
    cover_image_url: str | None = None
    default_example: Prediction | None = None
    latest_version: Version | None = None
    created_at: datetime | None = None
    is_official: bool | None = None

    @property
    def ref(self) -> str:
        """``owner/name``, as accepted by ``run()`` and ``stream()``."""
        return f"{self.owner}/{self.name}"


@attrs.frozen(kw_only=True)
class Collection:
    """A curated collection of models; ``models`` is absent in list pages."""

    slug: str
    name: str | None = None
    description: str | None = None
    full_description: str | None = None
    models: list[Model] | None = None


@attrs.frozen(kw_only=True)
class SearchMetadata:
    """What the search knows of a model beyond its page: a summary, a score, tags."""

    generated_description: str | None = None
    score: float | None = None
    tags: list[str] | None = None


@attrs.frozen(kw_only=True)
class SearchModel:
    """One model found by ``client.search()``."""

    model: Model
    metadata: SearchMetadata | None = None


@attrs.frozen(kw_only=True)
class SearchCollection:
    """A collection found by ``client.search()``; ``models`` are ``owner/name`` refs."""

    slug: str
    name: str | None = None
    description: str | None = None
    models: list[str] | None = None


@attrs.frozen(kw_only=True)
class SearchPage:
    """A page of Replicate's site (a guide, a doc) found by ``client.search()``."""

    name: str
    href: str


@attrs.frozen(kw_only=True)
class SearchResults:
    """What ``GET /search`` found: models (best first), collections and pages."""

    query: str
    models: list[SearchModel] = attrs.field(factory=list)
    collections: list[SearchCollection] = attrs.field(factory=list)
    pages: list[SearchPage] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class Hardware:
    """A hardware SKU models and deployments can run on."""

    sku: str
    name: str | None = None


@attrs.frozen(kw_only=True)
class Account:
    """The account a token belongs to (also a deployment release's author)."""

    username: str
    type: str | None = None
    name: str | None = None
    github_url: str | None = None
    avatar_url: str | None = None


@attrs.frozen(kw_only=True)
class DeploymentConfiguration:
    """Hardware and scaling of a deployment release."""

    hardware: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None


@attrs.frozen(kw_only=True)
class DeploymentRelease:
    """One release of a deployment: which version it serves and how."""

    number: int | None = None
    model: str | None = None
    version: str | None = None
    created_at: datetime | None = None
    created_by: Account | None = None
    configuration: DeploymentConfiguration | None = None


@attrs.frozen(kw_only=True)
class Deployment:
    """A deployment (``GET /deployments/{owner}/{name}``)."""

    owner: str
    name: str
    current_release: DeploymentRelease | None = None


@attrs.frozen(kw_only=True)
class File:
    """An uploaded file (``POST /files``); it expires 24 hours after upload."""

    id: str
    name: str | None = None
    content_type: str | None = None
    size: int | None = None
    etag: str | None = None
    checksums: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    urls: dict[str, str] | None = None


@attrs.frozen(kw_only=True)
class WebhookSecret:
    """The signing secret of the account's webhooks (``whsec_...``)."""

    key: str


@attrs.frozen(kw_only=True)
class Problem:
    """An error body (problem+json). ``retry_after`` appears on some 429s."""

    detail: Any = None
    title: str | None = None
    status: int | None = None
    retry_after: float | None = None
    invalid_fields: list[dict[str, Any]] | None = None


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a list: ``next`` is an absolute URL, or None on the last page."""

    results: list[T]
    next: str | None = None
    previous: str | None = None
