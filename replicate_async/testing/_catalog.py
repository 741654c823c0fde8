"""The emulator's catalog with no HTTP: models and their versions, deployments, collections.

A model is an entry (owner, name, visibility, hardware, links, README, examples) with
versions, newest last; a version (:class:`~._jobs.ModelSpec`) is what runs: a Python
function, its declared inputs and output, and the Cog schema derived from them. Models
registered in Python get a version at once; models created through ``POST /models``
start with none, as on Replicate. Deployments run a pinned version of a model; each
update makes a new release. The rules Replicate enforces (who may create what, what
may be deleted) live here; the HTTP layer only words the answers.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timezone
from typing import Any

import attrs

from ._jobs import ModelSpec
from ._schema import json_type

__all__ = ["Catalog", "CatalogError", "CollectionEntry", "DeploymentEntry", "ModelEntry"]

#: what ``GET /hardware`` lists (the recorded reply's SKUs)
HARDWARE = [
    {"sku": "cpu", "name": "CPU"},
    {"sku": "gpu-t4", "name": "Nvidia T4 GPU"},
    {"sku": "gpu-a40-small", "name": "Nvidia A40 GPU"},
    {"sku": "gpu-a40-large", "name": "Nvidia A40 (Large) GPU"},
]
HARDWARE_SKUS = frozenset(h["sku"] for h in HARDWARE)
#: a model's name: what Replicate's validator accepts (its message says so)
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")


_SEQUENCE = itertools.count(1)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CatalogError(Exception):
    """A request the catalog refuses: the HTTP status and what to say."""

    def __init__(self, status: int, detail: str, title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title


@attrs.define(kw_only=True, eq=False)
class ModelEntry:
    """A model: its page's facts and its versions (oldest first)."""

    owner: str
    name: str
    visibility: str = "public"
    hardware: str = "cpu"
    description: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    weights_url: str | None = None
    cover_image_url: str | None = None
    readme: str | None = None
    created_at: datetime = attrs.field(factory=_now)
    run_count: int = 0
    versions: list[ModelSpec] = attrs.field(factory=list)
    #: prediction ids shown as the model's examples (the first is its default example)
    examples: list[str] = attrs.field(factory=list)
    #: order of registration, for stable page cursors
    seq: int = attrs.field(factory=lambda: next(_SEQUENCE))
    #: one of the emulator's own models: read-only through the API, as another
    #: owner's model is on Replicate (tests rely on them being there)
    builtin: bool = False

    @property
    def ref(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    @property
    def latest(self) -> ModelSpec | None:
        """The newest version, if any."""
        return self.versions[-1] if self.versions else None


@attrs.define(kw_only=True, eq=False)
class DeploymentEntry:
    """A deployment: a name for a pinned version and its hardware, with numbered releases."""

    owner: str
    name: str
    model: str
    version: str
    hardware: str = "cpu"
    min_instances: int = 0
    max_instances: int = 1
    release: int = 1
    created_at: datetime = attrs.field(factory=_now)

    @property
    def ref(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"


@attrs.define(kw_only=True, eq=False)
class CollectionEntry:
    """A curated list of models."""

    slug: str
    name: str
    description: str
    models: list[str] = attrs.field(factory=list)
    full_description: str | None = None


@attrs.define(eq=False)
class Catalog:
    """Every model, version, deployment and collection the emulator serves."""

    #: the account every token of this emulator belongs to (what ``GET /account`` says)
    username: str = "emulator"
    models: dict[str, ModelEntry] = attrs.field(factory=dict)
    versions: dict[str, ModelSpec] = attrs.field(factory=dict)
    deployments: dict[str, DeploymentEntry] = attrs.field(factory=dict)
    collections: dict[str, CollectionEntry] = attrs.field(factory=dict)

    # -- models and versions -----------------------------------------------------------

    def add_version(self, spec: ModelSpec, *, builtin: bool = False, **facts: Any) -> ModelSpec:
        """Register a runnable version (creating its model, with ``facts``, if new)."""
        entry = self.models.get(spec.ref)
        if entry is None:
            entry = ModelEntry(owner=spec.owner, name=spec.name, builtin=builtin, **facts)
            self.models[spec.ref] = entry
        else:
            for key, value in facts.items():
                setattr(entry, key, value)
        if spec.description is not None and entry.description is None:
            entry.description = spec.description
        # Registering the same ref again replaces its version (a test redefining a model).
        entry.versions = [v for v in entry.versions if v.version != spec.version]
        entry.versions.append(spec)
        self.versions[spec.version] = spec
        return spec

    def model(self, ref: str) -> ModelEntry | None:
        """The model ``owner/name``, or None."""
        return self.models.get(ref)

    def latest(self, ref: str) -> ModelSpec | None:
        """What ``owner/name`` runs today: its newest version."""
        entry = self.models.get(ref)
        return None if entry is None else entry.latest

    def resolve(self, version: str) -> ModelSpec | None:
        """A create's ``version``: a 64-hex id, ``owner/name:id`` or ``owner/name``."""
        ref, sep, vid = version.partition(":")
        if not sep and "/" not in version:
            return self.versions.get(version)
        entry = self.models.get(ref)
        if entry is None:
            return None
        if not sep:
            return entry.latest
        return next((v for v in entry.versions if v.version == vid), None)

    def create_model(self, body: dict[str, Any]) -> ModelEntry:
        """``POST /models``: a new model with no versions."""
        owner, name = body.get("owner"), body.get("name")
        _require_strings(body, ("owner", "name", "visibility", "hardware"))
        owner, name = str(owner), str(name)
        if owner != self.username:
            raise CatalogError(
                403,
                f"You do not have permission to create models for {owner}. The owner must "
                "be the user or organization that owns the API token.",
                "Forbidden",
            )
        if body["visibility"] not in ("public", "private"):
            raise CatalogError(
                400,
                "visibility must be one of: public, private",
                "Bad Request",
            )
        if body["hardware"] not in HARDWARE_SKUS:
            raise CatalogError(
                400,
                f"Invalid hardware SKU {body['hardware']!r}; see GET /v1/hardware for the "
                "valid ones.",
                "Bad Request",
            )
        if not _NAME.match(name):
            raise CatalogError(
                400,
                "Enter a valid name. This value may contain only lowercase letters, numbers, "
                "dashes, underscores, or periods, and may not start or end with a dash, "
                "underscore, or period.",
                "Bad Request",
            )
        ref = f"{owner}/{name}"
        if ref in self.models:
            # Replicate's words (quoted by users of its 409).
            raise CatalogError(409, "A model with that name and owner already exists.", "Conflict")
        entry = ModelEntry(
            owner=owner,
            name=name,
            visibility=str(body["visibility"]),
            hardware=str(body["hardware"]),
            description=_optional(body, "description"),
            github_url=_optional(body, "github_url"),
            paper_url=_optional(body, "paper_url"),
            license_url=_optional(body, "license_url"),
            cover_image_url=_optional(body, "cover_image_url"),
        )
        self.models[ref] = entry
        return entry

    def update_model(self, ref: str, body: dict[str, Any]) -> ModelEntry:
        """``PATCH /models/{owner}/{name}``: change the model's page."""
        entry = self._own_model(ref)
        for key in ("description", "github_url", "paper_url", "license_url", "readme"):
            if key in body:
                setattr(entry, key, _optional(body, key))
        if "weights_url" in body:
            entry.weights_url = _optional(body, "weights_url")
        return entry

    def delete_model(self, ref: str) -> None:
        """``DELETE /models/{owner}/{name}``: only a private model with no versions."""
        entry = self._own_model(ref)
        if entry.visibility != "private":
            raise CatalogError(
                400,
                "Only private models can be deleted. Make the model private first.",
                "Bad Request",
            )
        if entry.versions:
            raise CatalogError(
                400,
                "Models with versions cannot be deleted. Delete its versions first.",
                "Bad Request",
            )
        del self.models[ref]

    def delete_version(self, ref: str, version_id: str) -> None:
        """``DELETE .../versions/{id}``: accepted (202), gone from the model at once."""
        entry = self._own_model(ref)
        spec = next((v for v in entry.versions if v.version == version_id), None)
        if spec is None:
            raise CatalogError(404, "Not found.")
        if any(d.version == version_id for d in self.deployments.values()):
            raise CatalogError(
                400,
                "This version is used by a deployment and cannot be deleted.",
                "Bad Request",
            )
        entry.versions.remove(spec)
        self.versions.pop(version_id, None)

    def _own_model(self, ref: str) -> ModelEntry:
        entry = self.models.get(ref)
        if entry is None:
            raise CatalogError(404, "Not found.")
        if entry.owner != self.username or entry.builtin:
            raise CatalogError(403, "You do not have permission to modify this model.", "Forbidden")
        return entry

    # -- deployments ---------------------------------------------------------------------

    def add_deployment(self, ref: str, model: str, **config: Any) -> DeploymentEntry:
        """Serve deployment ``owner/name`` running ``model``'s newest version."""
        spec = self.latest(model)
        if spec is None:
            raise ValueError(f"unknown model {model!r}: register it first")
        owner, _, name = ref.partition("/")
        entry = DeploymentEntry(owner=owner, name=name, model=model, version=spec.version, **config)
        self.deployments[ref] = entry
        return entry

    def create_deployment(self, body: dict[str, Any]) -> DeploymentEntry:
        """``POST /deployments``: owned by the token's account."""
        _require_strings(body, ("name", "model", "version", "hardware"))
        for key in ("min_instances", "max_instances"):
            if key not in body:
                raise CatalogError(422, f"- {key}: {key} is required\n", "Validation failed")
        ref = f"{self.username}/{body['name']}"
        if ref in self.deployments:
            raise CatalogError(409, f"A deployment named {ref} already exists.", "Conflict")
        config = self._deployment_config(body, model=str(body["model"]))
        entry = DeploymentEntry(owner=self.username, name=str(body["name"]), **config)
        self.deployments[ref] = entry
        return entry

    def update_deployment(self, ref: str, body: dict[str, Any]) -> DeploymentEntry:
        """``PATCH /deployments/{owner}/{name}``: a new release with the changes."""
        entry = self.deployments.get(ref)
        if entry is None:
            raise CatalogError(404, "Not found.")
        merged = {
            "version": entry.version,
            "hardware": entry.hardware,
            "min_instances": entry.min_instances,
            "max_instances": entry.max_instances,
            **body,
        }
        config = self._deployment_config(merged, model=entry.model)
        for key, value in config.items():
            setattr(entry, key, value)
        entry.release += 1
        return entry

    def delete_deployment(self, ref: str) -> None:
        """``DELETE /deployments/{owner}/{name}``."""
        if ref not in self.deployments:
            raise CatalogError(404, "Not found.")
        del self.deployments[ref]

    def deployment_spec(self, ref: str) -> ModelSpec | None:
        """The version a deployment runs."""
        entry = self.deployments.get(ref)
        return None if entry is None else self.versions.get(entry.version)

    def _deployment_config(self, body: dict[str, Any], *, model: str) -> dict[str, Any]:
        entry = self.models.get(model)
        version = body.get("version")
        if entry is None or not any(v.version == version for v in entry.versions):
            raise CatalogError(
                400,
                f"The version {version!r} does not exist on model {model!r}.",
                "Bad Request",
            )
        if body.get("hardware") not in HARDWARE_SKUS:
            raise CatalogError(
                400,
                f"Invalid hardware SKU {body.get('hardware')!r}; see GET /v1/hardware for "
                "the valid ones.",
                "Bad Request",
            )
        low, high = body.get("min_instances"), body.get("max_instances")
        for key, value, top in (("min_instances", low, 5), ("max_instances", high, 20)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise CatalogError(
                    422,
                    f"- {key}: Must be an integer between 0 and {top}\n",
                    "Validation failed",
                )
        low, high = int(str(low)), int(str(high))
        if low > high:
            raise CatalogError(
                422,
                "- min_instances: Must be less than or equal to max_instances\n",
                "Validation failed",
            )
        return {
            "model": model,
            "version": str(version),
            "hardware": str(body["hardware"]),
            "min_instances": low,
            "max_instances": high,
        }

    # -- collections ---------------------------------------------------------------------

    def add_collection(
        self, slug: str, name: str, description: str, models: list[str]
    ) -> CollectionEntry:
        """Serve a collection of (registered) models."""
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise ValueError(f"unknown models {unknown}: register them first")
        entry = CollectionEntry(slug=slug, name=name, description=description, models=models)
        self.collections[slug] = entry
        return entry


def _require_strings(body: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if not isinstance(body.get(k), str) or not body.get(k)]
    if missing:
        lines = "".join(f"- {k}: {k} is required\n" for k in missing)
        raise CatalogError(422, lines, "Validation failed")


def _optional(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        given = json_type(value)
        raise CatalogError(
            422, f"- {key}: Invalid type. Expected: string, given: {given}\n", "Validation failed"
        )
    return value
