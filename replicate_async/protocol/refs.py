"""Pure parsing of model references into the create endpoint and body they call for.

``owner/name`` runs the model's current version through the models endpoint (official
models), ``owner/name:version`` and a bare 64-hex version id go to ``POST /predictions``,
a deployment goes to the deployments endpoint, and a training to its version's
trainings endpoint. A malformed reference is a ``ValueError`` here, before any request.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import attrs

__all__ = [
    "Target",
    "deployment_target",
    "job_id",
    "model_target",
    "parse_ref",
    "split_owner_name",
    "training_target",
    "version_target",
]

_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_OWNER_NAME = re.compile(rf"^({_NAME})/({_NAME})$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")

_FORMS = (
    "Use 'owner/name' (the model's current version), 'owner/name:<version id>', "
    "or a bare 64-character version id."
)


@attrs.frozen
class Target:
    """Where a create goes: the path to POST to, and what to add to its JSON body."""

    path: str
    body: dict[str, Any] = attrs.field(factory=dict)
    #: a human-readable name for messages: "owner/name", "owner/name:abc", "deployment x/y"
    label: str = ""
    #: what it creates: "predictions" or "trainings" (also the path that lists them)
    kind: str = "predictions"
    #: (field, value) pairs what it creates reports: how a lost create is recognised
    identity: tuple[tuple[str, str], ...] = ()

    @property
    def is_create(self) -> bool:
        """Whether it counts against the create limit (the three prediction endpoints do)."""
        return self.kind == "predictions"

    @property
    def list_path(self) -> str:
        """Where what it creates is listed (to find a create whose reply was lost)."""
        return f"/{self.kind}"


def _cached(build: Callable[[str], Target]) -> Callable[[str], Target]:
    """Remember targets by their string: building one is pure, and every create builds one.

    (Regexes and quoting cost a few microseconds a create.) Non-strings skip the cache
    and get the builder's own error.
    """
    remembered = functools.lru_cache(maxsize=1024)(build)

    @functools.wraps(build)
    def target(ref: str) -> Target:
        return remembered(ref) if isinstance(ref, str) else build(ref)

    return target


def split_owner_name(ref: str, what: str = "model") -> tuple[str, str]:
    """Split ``owner/name``; raise ``ValueError`` saying the expected form otherwise."""
    if not isinstance(ref, str):
        raise TypeError(f"{what} must be a str like 'owner/name', got {type(ref).__name__}")
    match = _OWNER_NAME.match(ref.strip())
    if match is None:
        raise ValueError(f"Invalid {what} {ref!r}: expected 'owner/name'.")
    return match.group(1), match.group(2)


@_cached
def model_target(ref: str) -> Target:
    """The target for an ``owner/name`` model (no version)."""
    owner, name = split_owner_name(ref)
    ref = f"{owner}/{name}"
    path = f"/models/{quote(owner)}/{quote(name)}/predictions"
    return Target(path, {}, ref, identity=(("model", ref),))


@_cached
def version_target(version: str) -> Target:
    """The target for ``POST /predictions`` with a version id, ``owner/name:id`` accepted."""
    if not isinstance(version, str):
        raise TypeError(f"version must be a str, got {type(version).__name__}")
    version = version.strip()
    _, sep, vid = version.rpartition(":")
    if sep:
        owner_name = version[: -len(vid) - 1]
        if not vid or _VERSION.match(vid) is None or _OWNER_NAME.match(owner_name) is None:
            raise ValueError(
                f"Invalid model reference {version!r}: expected owner/name:<version id>. {_FORMS}"
            )
        return Target("/predictions", {"version": vid}, version, identity=(("version", vid),))
    if _VERSION.match(version) is None:
        raise ValueError(f"Invalid version id {version!r}. {_FORMS}")
    return Target("/predictions", {"version": version}, version, identity=(("version", version),))


@_cached
def deployment_target(ref: str) -> Target:
    """The target for a deployment, ``owner/name``."""
    owner, name = split_owner_name(ref, "deployment")
    return Target(
        f"/deployments/{quote(owner)}/{quote(name)}/predictions",
        {},
        f"deployment {owner}/{name}",
        identity=(("deployment", f"{owner}/{name}"),),
    )


def training_target(model: str, version: str, destination: str) -> Target:
    """The target for training ``model`` at ``version`` into ``destination`` (``owner/name``)."""
    owner, name = split_owner_name(model)
    split_owner_name(destination, "destination")
    if not isinstance(version, str) or _VERSION.match(version.strip()) is None:
        raise ValueError(f"Invalid version id {version!r} for training {owner}/{name}.")
    vid = version.strip()
    return Target(
        f"/models/{quote(owner)}/{quote(name)}/versions/{quote(vid)}/trainings",
        {"destination": destination.strip()},
        f"training of {owner}/{name}:{vid}",
        "trainings",
        (("version", vid),),
    )


def job_id(value: Any) -> str:
    """The id of a prediction or training given as one (``.id``) or as its id string."""
    found = getattr(value, "id", value)
    if not isinstance(found, str) or not found.strip() or "/" in found:
        raise ValueError(f"Invalid prediction id {value!r}")
    return found.strip()


@_cached
def parse_ref(ref: str) -> Target:
    """Parse what ``run()`` and ``stream()`` accept into a :class:`Target`."""
    if not isinstance(ref, str):
        raise TypeError(f"model reference must be a str, got {type(ref).__name__}. {_FORMS}")
    text = ref.strip()
    if _VERSION_ID.match(text):
        return Target("/predictions", {"version": text}, text, identity=(("version", text),))
    if ":" in text:
        return version_target(text)
    if "/" in text:
        try:
            return model_target(text)
        except ValueError:
            pass
    raise ValueError(f"Invalid model reference {ref!r}. {_FORMS}")
