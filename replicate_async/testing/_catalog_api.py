"""The emulator's catalog routes: models, versions, deployments, collections, search.

Thin handlers over :class:`~._catalog.Catalog`: they read the request, let the catalog
decide, and write the reply in the shapes and status codes Replicate uses (``POST
/models`` 201, ``POST /deployments`` 200, version delete 202, deletes 204, README as
``text/plain``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from ._catalog import HARDWARE, CatalogError, CollectionEntry, DeploymentEntry, ModelEntry
from ._http import (
    STATE,
    WEB_URL,
    State,
    base_url,
    json_reply,
    method_not_allowed,
    not_found,
    page_of,
    problem,
    read_json,
    request_method,
)
from ._jobs import ModelSpec, timestamp

__all__ = ["add_catalog_routes", "model_json"]


def version_json(spec: ModelSpec) -> dict[str, Any]:
    """A version as ``GET .../versions/{id}`` returns it."""
    return {
        "id": spec.version,
        "created_at": timestamp(spec.created_at),
        "cog_version": spec.cog_version,
        "openapi_schema": spec.openapi_schema(),
    }


def model_json(request: web.Request, entry: ModelEntry) -> dict[str, Any]:
    """A model as ``GET /models/{owner}/{name}`` returns it."""
    state = request.app[STATE]
    latest = entry.latest
    example = None
    if entry.examples:
        job = state.jobs.jobs.get(entry.examples[0])
        if job is not None:
            example = job.to_json(base_url(request), WEB_URL)
    return {
        "url": f"{WEB_URL}/{entry.ref}",
        "owner": entry.owner,
        "name": entry.name,
        "description": entry.description,
        "visibility": entry.visibility,
        "github_url": entry.github_url,
        "paper_url": entry.paper_url,
        "license_url": entry.license_url,
        "run_count": entry.run_count,
        "cover_image_url": entry.cover_image_url,
        "default_example": example,
        "latest_version": None if latest is None else version_json(latest),
        "created_at": timestamp(entry.created_at),
    }


def _catalog_error(error: CatalogError) -> web.Response:
    if error.status == 404:
        return not_found()
    return problem(error.status, error.detail, error.title)


def _ref(request: web.Request) -> str:
    return f"{request.match_info['owner']}/{request.match_info['name']}"


def _visible(state: State, ref: str) -> ModelEntry | None:
    """A model the token's account may see (everyone's public ones, its own private ones)."""
    entry = state.catalog.model(ref)
    if entry is None:
        return None
    if entry.visibility == "private" and entry.owner != state.catalog.username:
        return None
    return entry


# -- models --------------------------------------------------------------------------------

_SORT_BY = ("model_created_at", "latest_version_created_at")
_DIRECTIONS = ("asc", "desc")


def _enum_problem(name: str, value: str, allowed: tuple[str, ...]) -> web.Response:
    # Replicate's wording for bad query values is not on record; this follows its
    # validator's (the one that words input errors).
    choices = ", ".join(f'"{a}"' for a in allowed)
    return problem(
        400, f"{name} must be one of the following: {choices} (got {value!r})", "Bad Request"
    )


async def _list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    sort_by = request.query.get("sort_by", "latest_version_created_at")
    direction = request.query.get("sort_direction", "desc")
    if sort_by not in _SORT_BY:
        return _enum_problem("sort_by", sort_by, _SORT_BY)
    if direction not in _DIRECTIONS:
        return _enum_problem("sort_direction", direction, _DIRECTIONS)

    def when(entry: ModelEntry) -> datetime:
        if sort_by == "model_created_at" or entry.latest is None:
            return entry.created_at
        return entry.latest.created_at

    def order(entry: ModelEntry) -> int:
        # The sort time, then the registration order: a cursor made of it stays right
        # when models are added between pages.
        return int(when(entry).timestamp() * 1_000_000) * 1_000_000 + entry.seq

    descending = direction == "desc"
    models = [m for m in state.catalog.models.values() if _visible(state, m.ref) is not None]
    models.sort(key=order, reverse=descending)
    return page_of(
        request,
        models,
        order if descending else lambda m: -order(m),
        lambda m: model_json(request, m),
    )


async def _search_models(request: web.Request) -> web.Response:
    """``QUERY /models``: the older search, a page of models matching the text body."""
    state = request.app[STATE]
    query = (await request.text()).strip().lower()
    models = [m for m in _matching(state, query)]
    index = {id(m): i for i, m in enumerate(models)}
    return page_of(request, models, lambda m: -index[id(m)], lambda m: model_json(request, m))


def _matching(state: State, query: str) -> list[ModelEntry]:
    words = query.lower().split()
    found = []
    for entry in sorted(state.catalog.models.values(), key=lambda m: m.ref):
        if _visible(state, entry.ref) is None:
            continue
        text = f"{entry.ref} {entry.description or ''}".lower()
        if all(word in text for word in words):
            found.append(entry)
    return found


async def _create_model(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    try:
        entry = state.catalog.create_model(body)
    except CatalogError as error:
        return _catalog_error(error)
    return json_reply(model_json(request, entry), 201)


async def models_collection(request: web.Request) -> web.Response:
    """``/models``: GET lists, POST creates, QUERY searches."""
    method = request_method(request)
    if method == "GET":
        return await _list_models(request)
    if method == "POST":
        return await _create_model(request)
    if method == "QUERY":
        return await _search_models(request)
    return method_not_allowed(method)


async def model_item(request: web.Request) -> web.Response:
    """``/models/{owner}/{name}``: GET, PATCH, DELETE."""
    state = request.app[STATE]
    ref = _ref(request)
    method = request_method(request)
    if method == "GET":
        entry = _visible(state, ref)
        return not_found() if entry is None else json_reply(model_json(request, entry))
    try:
        if method == "PATCH":
            body = await read_json(request)
            if isinstance(body, web.Response):
                return body
            entry = state.catalog.update_model(ref, body)
            return json_reply(model_json(request, entry))
        if method == "DELETE":
            state.catalog.delete_model(ref)
            return web.Response(status=204)
    except CatalogError as error:
        return _catalog_error(error)
    return method_not_allowed(method)


async def list_versions(request: web.Request) -> web.Response:
    entry = _visible(request.app[STATE], _ref(request))
    if entry is None:
        return not_found()
    versions = list(reversed(entry.versions))  # newest first
    index = {id(v): i for i, v in enumerate(versions)}
    return page_of(request, versions, lambda v: -index[id(v)], version_json)


async def version_item(request: web.Request) -> web.Response:
    """``/models/{owner}/{name}/versions/{version}``: GET, DELETE (202)."""
    state = request.app[STATE]
    ref = _ref(request)
    entry = _visible(state, ref)
    if entry is None:
        return not_found()
    vid = request.match_info["version"]
    method = request_method(request)
    if method == "GET":
        spec = next((v for v in entry.versions if v.version == vid), None)
        return not_found() if spec is None else json_reply(version_json(spec))
    if method == "DELETE":
        try:
            state.catalog.delete_version(ref, vid)
        except CatalogError as error:
            return _catalog_error(error)
        return web.Response(status=202)
    return method_not_allowed(method)


async def model_examples(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entry = _visible(state, _ref(request))
    if entry is None:
        return not_found()
    jobs = [state.jobs.jobs[i] for i in entry.examples if i in state.jobs.jobs]
    index = {j.id: n for n, j in enumerate(jobs)}
    url = base_url(request)
    return page_of(request, jobs, lambda j: -index[j.id], lambda j: j.to_json(url, WEB_URL))


async def model_readme(request: web.Request) -> web.Response:
    entry = _visible(request.app[STATE], _ref(request))
    if entry is None or entry.readme is None:
        return not_found()
    return web.Response(text=entry.readme, content_type="text/plain")


# -- deployments ---------------------------------------------------------------------------


def deployment_json(state: State, entry: DeploymentEntry) -> dict[str, Any]:
    """A deployment as ``GET /deployments/{owner}/{name}`` returns it."""
    return {
        "owner": entry.owner,
        "name": entry.name,
        "current_release": {
            "number": entry.release,
            "model": entry.model,
            "version": entry.version,
            "created_at": timestamp(entry.created_at),
            "created_by": {
                "type": "organization",
                "username": entry.owner,
                "name": entry.owner,
                "avatar_url": f"https://cdn.replicate.com/avatars/{entry.owner}.png",
                "github_url": f"https://github.com/{entry.owner}",
            },
            "configuration": {
                "hardware": entry.hardware,
                "min_instances": entry.min_instances,
                "max_instances": entry.max_instances,
            },
        },
    }


async def deployments_collection(request: web.Request) -> web.Response:
    """``/deployments``: GET lists, POST creates (200, as documented)."""
    state = request.app[STATE]
    method = request_method(request)
    if method == "GET":
        items = sorted(state.catalog.deployments.values(), key=lambda d: d.ref)
        index = {d.ref: i for i, d in enumerate(items)}
        return page_of(request, items, lambda d: -index[d.ref], lambda d: deployment_json(state, d))
    if method == "POST":
        body = await read_json(request)
        if isinstance(body, web.Response):
            return body
        try:
            entry = state.catalog.create_deployment(body)
        except CatalogError as error:
            return _catalog_error(error)
        return json_reply(deployment_json(state, entry))
    return method_not_allowed(method)


async def deployment_item(request: web.Request) -> web.Response:
    """``/deployments/{owner}/{name}``: GET, PATCH, DELETE (204)."""
    state = request.app[STATE]
    ref = _ref(request)
    method = request_method(request)
    try:
        if method == "GET":
            entry = state.catalog.deployments.get(ref)
            return not_found() if entry is None else json_reply(deployment_json(state, entry))
        if method == "PATCH":
            body = await read_json(request)
            if isinstance(body, web.Response):
                return body
            return json_reply(deployment_json(state, state.catalog.update_deployment(ref, body)))
        if method == "DELETE":
            state.catalog.delete_deployment(ref)
            return web.Response(status=204)
    except CatalogError as error:
        return _catalog_error(error)
    return method_not_allowed(method)


# -- collections, search, the rest ------------------------------------------------------------


def _collection_summary(entry: CollectionEntry) -> dict[str, Any]:
    return {"name": entry.name, "slug": entry.slug, "description": entry.description}


async def list_collections(request: web.Request) -> web.Response:
    items = sorted(request.app[STATE].catalog.collections.values(), key=lambda c: c.slug)
    index = {c.slug: i for i, c in enumerate(items)}
    return page_of(request, items, lambda c: -index[c.slug], _collection_summary)


async def get_collection(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entry = state.catalog.collections.get(request.match_info["slug"])
    if entry is None:
        return not_found()
    models = [m for m in (_visible(state, ref) for ref in entry.models) if m is not None]
    return json_reply(
        {
            **_collection_summary(entry),
            "full_description": entry.full_description,
            "models": [model_json(request, m) for m in models],
        }
    )


async def search(request: web.Request) -> web.Response:
    """``GET /search?query=...&limit=...``: models, collections and pages."""
    state = request.app[STATE]
    query = request.query.get("query", "").strip()
    if not query:
        # Documented: this one is plain application/json, not problem+json.
        return json_reply({"detail": 'Query parameter "query" is required', "status": 400}, 400)
    raw_limit = request.query.get("limit", "20")
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 50:
        return json_reply(
            {"detail": 'Query parameter "limit" must be an integer from 1 to 50', "status": 400},
            400,
        )
    models = _matching(state, query)[:limit]
    lowered = query.lower()
    collections = [
        c
        for c in sorted(state.catalog.collections.values(), key=lambda c: c.slug)
        if lowered in f"{c.slug} {c.name} {c.description}".lower()
        or any(m.ref in c.models for m in models)
    ]
    return json_reply(
        {
            "query": query,
            "models": [
                {
                    "model": model_json(request, m),
                    "metadata": {
                        "generated_description": m.description,
                        "score": round(1.0 / (rank + 1), 6),
                        "tags": [],
                    },
                }
                for rank, m in enumerate(models)
            ],
            "collections": [{**_collection_summary(c), "models": c.models} for c in collections],
            "pages": [],
        }
    )


async def list_hardware(request: web.Request) -> web.Response:
    return json_reply(HARDWARE)


async def get_account(request: web.Request) -> web.Response:
    username = request.app[STATE].catalog.username
    return json_reply(
        {
            "type": "user",
            "username": username,
            "name": username.capitalize(),
            "github_url": f"https://github.com/{username}",
        }
    )


def add_catalog_routes(app: web.Application) -> None:
    """Register the catalog's routes under ``/v1``."""
    r = app.router
    v = "/v1"
    r.add_route("*", f"{v}/models", models_collection)
    r.add_route("*", f"{v}/models/{{owner}}/{{name}}", model_item)
    r.add_get(f"{v}/models/{{owner}}/{{name}}/versions", list_versions)
    r.add_route("*", f"{v}/models/{{owner}}/{{name}}/versions/{{version}}", version_item)
    r.add_get(f"{v}/models/{{owner}}/{{name}}/examples", model_examples)
    r.add_get(f"{v}/models/{{owner}}/{{name}}/readme", model_readme)
    r.add_route("*", f"{v}/deployments", deployments_collection)
    r.add_route("*", f"{v}/deployments/{{owner}}/{{name}}", deployment_item)
    r.add_get(f"{v}/collections", list_collections)
    r.add_get(f"{v}/collections/{{slug}}", get_collection)
    r.add_get(f"{v}/search", search)
    r.add_get(f"{v}/hardware", list_hardware)
    r.add_get(f"{v}/account", get_account)
