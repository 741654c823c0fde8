"""The emulator's HTTP side: Replicate's API routes on aiohttp.web, and the delivery host.

Replies follow the real service: JSON bodies, problem+json errors (401 without rate-limit
headers), 201 with ``Location`` on create, ``Prefer: wait``, ``Cancel-After``, pages with
absolute ``next`` links and opaque cursors, ``ratelimit-*`` headers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import attrs
from aiohttp import web

from ..convert import parse_datetime
from ..limits import TokenBucket
from ..sse import encode_event
from ._files import DeliveryFaults, UploadStore, add_file_routes
from ._jobs import InputError, Job, JobStore, ModelSpec

__all__ = [
    "ApiState",
    "Fault",
    "StreamFault",
    "build_api_app",
    "build_stream_app",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON = "application/json"
PROBLEM = "application/problem+json"
CREATE_ROUTES = frozenset(
    {
        ("POST", "/predictions"),
        ("POST", "/models/{owner}/{name}/predictions"),
        ("POST", "/deployments/{owner}/{name}/predictions"),
    }
)
_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
_HARDWARE = [
    {"sku": "cpu", "name": "CPU"},
    {"sku": "gpu-t4", "name": "Nvidia T4 GPU"},
    {"sku": "gpu-a40-small", "name": "Nvidia A40 GPU"},
    {"sku": "gpu-a40-large", "name": "Nvidia A40 (Large) GPU"},
]


@attrs.define(kw_only=True)
class Fault:
    """An injected failure for the next ``times`` requests matching method and route.

    ``status`` answers with that status and ``body`` instead of running the handler;
    ``reset_after=True`` runs the handler (so a create really happens) and then drops
    the connection without a reply; ``delay`` waits that many seconds first (to outlast a
    client's timeout), then carries on.
    """

    method: str
    route: str
    times: int = 1
    status: int | None = None
    body: bytes = b""
    content_type: str = "text/html"
    reset_after: bool = False
    delay: float = 0.0


@attrs.define(kw_only=True)
class StreamFault:
    """Cut the next ``times`` stream connections after ``after`` events.

    With ``resumable=False`` the stream is gone afterwards: reconnections get 404.
    """

    after: int
    resumable: bool = True
    times: int = 1


@attrs.define(kw_only=True)
class ApiState:
    """Everything the handlers share."""

    store: JobStore
    tokens: set[str]
    page_size: int
    create_per_minute: float
    other_per_minute: float
    create_burst: float | None
    other_burst: float | None
    enforce_limits: bool
    low_credit: bool
    webhook_secret: str
    requests: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    faults: list[Fault] = attrs.field(factory=list)
    statuses: Counter[tuple[str, str, int]] = attrs.field(factory=Counter)
    delivery_headers: list[dict[str, str]] = attrs.field(factory=list)
    buckets: dict[tuple[str, bool], TokenBucket] = attrs.field(factory=dict)
    stream_faults: list[StreamFault] = attrs.field(factory=list)
    stream_requests: list[dict[str, str]] = attrs.field(factory=list)
    stream_idle_timeout: float = 30.0
    uploads: UploadStore = attrs.field(factory=lambda: UploadStore(100 * 1024 * 1024))
    delivery_faults: DeliveryFaults = attrs.field(factory=DeliveryFaults)

    def bucket(self, token: str, create: bool) -> TokenBucket:
        """The server-side bucket of one token and one limit class, made on first use."""
        key = (token, create)
        if key not in self.buckets:
            per_minute = self.create_per_minute if create else self.other_per_minute
            burst = self.create_burst if create else self.other_burst
            # The same arithmetic as the client's buckets, without any adapting: a server
            # bucket simply refills at its rate, up to its burst (a minute's worth unless
            # set: the recorded headers show 599 left after one create).
            self.buckets[key] = TokenBucket(per_minute / 60, burst or per_minute)
        return self.buckets[key]


STATE: web.AppKey[ApiState] = web.AppKey("state", ApiState)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type=JSON,
        headers=headers,
    )


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> web.Response:
    """An error reply as Replicate sends them (title is absent on some)."""
    body: dict[str, Any] = {}
    if title is not None:
        body["title"] = title
    body["detail"] = detail
    body["status"] = status
    body.update(extra)
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": PROBLEM}
    )


def _not_found() -> web.Response:
    return problem(404, "Not found.")


def _route(request: web.Request) -> str:
    info = request.match_info.route.resource
    canonical = info.canonical if info is not None else request.path
    return canonical.removeprefix("/v1") or "/"


def _token(request: web.Request) -> str:
    """The API token of an authenticated request (the middleware checked it)."""
    return request.headers["Authorization"].partition(" ")[2].strip()


def _method(request: web.Request) -> str:
    # aiohttp's C parser (llhttp) does not know QUERY yet and reports "<unknown>"; the
    # API's only QUERY route is search, so an unknown method there is taken as QUERY.
    if request.method == "<unknown>":
        return "QUERY"
    return request.method


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/v1"


# -- middleware ------------------------------------------------------------------------


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    route = _route(request)
    if route == "/_emulator/stats":
        return await handler(request)
    method = _method(request)
    state.requests[(method, route)] += 1
    response = await _serve(request, handler, state, method, route)
    state.statuses[(method, route, response.status)] += 1
    return response


async def _serve(
    request: web.Request, handler: Handler, state: ApiState, method: str, route: str
) -> web.StreamResponse:
    """Faults, then auth, then rate limits, then the route's handler."""
    fault = next((f for f in state.faults if f.method == method and f.route == route), None)
    if fault is not None:
        fault.times -= 1
        if fault.times <= 0:
            state.faults.remove(fault)
        if fault.delay:
            # Read the request first: a client that gives up waiting has still sent it,
            # and the server still acts on it.
            if not request.content_type.startswith("multipart/"):
                await request.read()  # (a multipart body is read by its handler, as a stream)
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            return web.Response(
                body=fault.body, status=fault.status, headers={"Content-Type": fault.content_type}
            )
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() not in ("bearer", "token") or token.strip() not in state.tokens:
        # The real 401 carries no rate-limit headers.
        return problem(401, "You did not pass a valid authentication token", "Unauthenticated")
    create = (method, route) in CREATE_ROUTES
    bucket = state.bucket(token.strip(), create)
    now = time.monotonic()
    allowed = bucket.take(now) or not state.enforce_limits
    # Whole seconds until the next token, as the real headers and 429 texts give it.
    reset = max(1, math.ceil(bucket.delay(now)))
    limit_headers = {
        "ratelimit-remaining": str(int(bucket.available(now))),
        "ratelimit-reset": str(reset),
    }
    if not allowed:
        reply = _throttled(state, bucket, create, reset)
        reply.headers.update(limit_headers)
        return reply
    response = await handler(request)
    response.headers.update(limit_headers)
    if fault is not None and fault.reset_after:
        # The work is done server-side; the client never hears about it.
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    return response


def _throttled(state: ApiState, bucket: TokenBucket, create: bool, reset: int) -> web.Response:
    """A 429 worded as Replicate words them."""
    if state.low_credit and create:
        per_minute = f"{bucket.rate * 60:g}"
        return problem(
            429,
            "Request was throttled. Your rate limit for creating predictions is reduced to "
            f"{per_minute} requests per minute with a burst of {bucket.capacity:g} requests "
            f"while you have less than $5.0 in credit. Your rate limit resets in ~{reset}s.",
            retry_after=reset,
        )
    unit = "second" if reset == 1 else "seconds"
    return problem(429, f"Request was throttled. Expected available in {reset} {unit}.")


# -- predictions -----------------------------------------------------------------------


def _prefer_wait(request: web.Request) -> float | None:
    header = request.headers.get("Prefer")
    if not header:
        return None
    for part in header.split(","):
        match = _WAIT.match(part)
        if match:
            seconds = int(match.group(1)) if match.group(1) else 60
            return float(min(60, max(1, seconds)))
    return None


def _cancel_after(value: str) -> float | None:
    text = value.strip()
    if text.isdigit():
        return float(text)
    match = _DURATION.match(text)
    if not text or match is None:
        return None
    h, m, s = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + s)


async def _read_json(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        data = await request.json()
    except ValueError:
        return problem(400, "The request body is not valid JSON.", "Invalid JSON")
    if not isinstance(data, dict):
        return problem(400, "The request body must be a JSON object.", "Invalid JSON")
    return data


async def _create(
    request: web.Request,
    spec: ModelSpec,
    body: dict[str, Any],
    *,
    kind: str = "prediction",
    deployment: str | None = None,
    destination: str | None = None,
) -> web.Response:
    state = request.app[STATE]
    data = body.get("input", {})
    try:
        spec.validate(data)
    except InputError as exc:
        return problem(
            422,
            f"- {exc.field}: {exc.description}\n",
            "Input validation failed",
            invalid_fields=[{"type": exc.kind, "field": exc.field, "description": exc.description}],
        )
    stream = bool(body.get("stream", False))
    if stream and not spec.streams:
        # Word for word what the real API answers (recorded).
        return problem(422, "Streaming not supported for the output type of the requested version.")
    webhook = body.get("webhook")
    events = body.get("webhook_events_filter")
    cancel_after: float | None = None
    if "Cancel-After" in request.headers:
        cancel_after = _cancel_after(request.headers["Cancel-After"])
        if cancel_after is None or not 5 <= cancel_after <= 24 * 3600:
            return problem(
                400,
                "Cancel-After must be a duration between 5s and 24h, like 30s, 5m or 1h30m45s.",
                "Invalid Cancel-After",
            )
    auth_token = _token(request)
    job = state.store.new_job(
        kind=kind,
        model=spec,
        input=data,
        token=auth_token,
        webhook=webhook if isinstance(webhook, str) else None,
        webhook_events_filter=list(events) if isinstance(events, list) else None,
        stream=stream,
        deployment=deployment,
        destination=destination,
    )
    if cancel_after is not None:
        state.store.cancel_after(job, cancel_after)
    wait = _prefer_wait(request)
    if wait is not None:
        try:
            await asyncio.wait_for(asyncio.shield(job.done.wait()), wait)
        except asyncio.TimeoutError:
            pass
    payload = _job_json(request, job)
    return _json(payload, 201, {"Location": payload["urls"]["get"]})


def _job_json(request: web.Request, job: Job) -> dict[str, Any]:
    data = job.to_json(_base(request), "https://replicate.com")
    if job.kind == "training" and job.destination is not None:
        data["destination"] = job.destination
    return data


def _resolve_version(state: ApiState, version: str) -> ModelSpec | None:
    if _VERSION_ID.match(version):
        return state.store.by_version.get(version)
    ref, sep, vid = version.partition(":")
    spec = state.store.models.get(ref)
    if spec is None or (sep and vid != spec.version):
        return None
    return spec


async def create_prediction(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _read_json(request)
    if isinstance(body, web.Response):
        return body
    version = body.get("version")
    if not isinstance(version, str):
        return problem(422, "- version: version is required\n", "Input validation failed")
    spec = _resolve_version(state, version)
    if spec is None:
        return problem(
            422,
            "The specified version does not exist (or perhaps you don't have permission to "
            "use it?)",
            "Invalid version or not permitted",
        )
    return await _create(request, spec, body)


def _model(request: web.Request) -> ModelSpec | None:
    ref = f"{request.match_info['owner']}/{request.match_info['name']}"
    return request.app[STATE].store.models.get(ref)


async def create_model_prediction(request: web.Request) -> web.Response:
    spec = _model(request)
    if spec is None:
        return _not_found()
    body = await _read_json(request)
    if isinstance(body, web.Response):
        return body
    return await _create(request, spec, body)


async def create_deployment_prediction(request: web.Request) -> web.Response:
    ref = f"{request.match_info['owner']}/{request.match_info['name']}"
    spec = request.app[STATE].store.deployments.get(ref)
    if spec is None:
        return _not_found()
    body = await _read_json(request)
    if isinstance(body, web.Response):
        return body
    return await _create(request, spec, body, deployment=ref)


def _job(request: web.Request, kind: str) -> Job | None:
    state = request.app[STATE]
    job = state.store.jobs.get(request.match_info["id"])
    token = _token(request)
    # Another token's predictions are invisible, as on the real service.
    if job is None or job.token != token or (kind == "training" and job.kind != kind):
        return None
    return job


def _query_time(request: web.Request, name: str) -> datetime | None:
    """A timestamp query parameter (RFC 3339, as the API takes them), or None."""
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise ValueError(f"{name} must be an RFC 3339 timestamp, got {value!r}") from None


def _job_handlers(kind: str) -> tuple[Handler, Handler, Handler]:
    """GET one, POST cancel and GET the list, for predictions or trainings alike."""

    async def get(request: web.Request) -> web.StreamResponse:
        job = _job(request, kind)
        return _not_found() if job is None else _json(_job_json(request, job))

    async def cancel(request: web.Request) -> web.StreamResponse:
        job = _job(request, kind)
        if job is None:
            return _not_found()
        request.app[STATE].store.cancel(job)
        return _json(_job_json(request, job))

    async def list_(request: web.Request) -> web.StreamResponse:
        token = _token(request)
        try:
            after = _query_time(request, "created_after")
            before = _query_time(request, "created_before")
        except ValueError as exc:
            return problem(400, str(exc), "Bad Request")
        jobs = [
            j
            for j in request.app[STATE].store.jobs.values()
            if j.kind == kind
            and j.token == token
            and (after is None or j.created_at > after)
            and (before is None or j.created_at < before)
        ]
        jobs.sort(key=lambda j: -j.seq)  # newest first
        return _page(request, jobs, lambda j: j.seq, lambda j: _job_json(request, j))

    return get, cancel, list_


get_prediction, cancel_prediction, list_predictions = _job_handlers("prediction")
get_training, cancel_training, list_trainings = _job_handlers("training")


def _encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(f"k:{key}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("k:")) if text.startswith("k:") else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _page(
    request: web.Request, items: list[Any], key: Callable[[Any], int], render: Callable[[Any], Any]
) -> web.Response:
    """One page of ``items`` (sorted by ``key`` descending), with an absolute ``next``."""
    state = request.app[STATE]
    cursor = request.query.get("cursor")
    if cursor is not None:
        after = _decode_cursor(cursor)
        if after is None:
            return problem(400, "Invalid cursor.", "Bad Request")
        items = [item for item in items if key(item) < after]
    page = items[: state.page_size]
    next_url = None
    if len(items) > state.page_size:
        next_url = str(request.url.update_query(cursor=_encode_cursor(key(page[-1]))))
    return _json({"next": next_url, "previous": None, "results": [render(i) for i in page]})


# -- models, versions, trainings, deployments, the rest ---------------------------------


def _version_json(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.version,
        "created_at": "2024-01-01T00:00:00.000000Z",
        "cog_version": "0.9.0",
        "openapi_schema": spec.openapi_schema(),
    }


def _model_json(spec: ModelSpec) -> dict[str, Any]:
    return {
        "url": f"https://replicate.com/{spec.ref}",
        "owner": spec.owner,
        "name": spec.name,
        "description": spec.description,
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": 0,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": _version_json(spec),
    }


def _sorted_models(state: ApiState) -> list[ModelSpec]:
    return sorted(state.store.models.values(), key=lambda s: s.ref)


async def get_model(request: web.Request) -> web.Response:
    spec = _model(request)
    return _not_found() if spec is None else _json(_model_json(spec))


async def list_models(request: web.Request) -> web.Response:
    models = _sorted_models(request.app[STATE])
    index = {id(m): i for i, m in enumerate(models)}
    return _page(request, models, lambda m: -index[id(m)], _model_json)


async def search_models(request: web.Request) -> web.Response:
    query = (await request.text()).strip().lower()
    models = [
        m
        for m in _sorted_models(request.app[STATE])
        if query in m.ref.lower() or query in (m.description or "").lower()
    ]
    index = {id(m): i for i, m in enumerate(models)}
    return _page(request, models, lambda m: -index[id(m)], _model_json)


async def models_collection(request: web.Request) -> web.Response:
    method = _method(request)
    if method == "GET":
        return await list_models(request)
    if method == "QUERY":
        return await search_models(request)
    return problem(405, "Method Not Allowed", "Method Not Allowed")


async def list_versions(request: web.Request) -> web.Response:
    spec = _model(request)
    if spec is None:
        return _not_found()
    return _json({"next": None, "previous": None, "results": [_version_json(spec)]})


async def get_version(request: web.Request) -> web.Response:
    spec = _model(request)
    if spec is None or request.match_info["version"] != spec.version:
        return _not_found()
    return _json(_version_json(spec))


async def create_training(request: web.Request) -> web.Response:
    spec = _model(request)
    if spec is None or request.match_info["version"] != spec.version:
        return _not_found()
    body = await _read_json(request)
    if isinstance(body, web.Response):
        return body
    destination = body.get("destination")
    if not isinstance(destination, str) or destination.count("/") != 1:
        return problem(404, "The specified training destination does not exist")
    return await _create(request, spec, body, kind="training", destination=destination)


def _deployment_json(ref: str, spec: ModelSpec) -> dict[str, Any]:
    owner, name = ref.split("/")
    return {
        "owner": owner,
        "name": name,
        "current_release": {
            "number": 1,
            "model": spec.ref,
            "version": spec.version,
            "created_at": "2024-01-01T00:00:00.000000Z",
            "created_by": {"type": "organization", "username": owner, "name": owner},
            "configuration": {"hardware": "cpu", "min_instances": 0, "max_instances": 1},
        },
    }


async def get_deployment(request: web.Request) -> web.Response:
    ref = f"{request.match_info['owner']}/{request.match_info['name']}"
    spec = request.app[STATE].store.deployments.get(ref)
    return _not_found() if spec is None else _json(_deployment_json(ref, spec))


async def list_deployments(request: web.Request) -> web.Response:
    items = sorted(request.app[STATE].store.deployments.items())
    index = {ref: i for i, (ref, _) in enumerate(items)}
    return _page(request, items, lambda it: -index[it[0]], lambda it: _deployment_json(*it))


async def list_hardware(request: web.Request) -> web.Response:
    return _json(_HARDWARE)


async def get_account(request: web.Request) -> web.Response:
    return _json({"type": "user", "username": "emulator", "name": "Emulator", "github_url": None})


async def webhook_secret(request: web.Request) -> web.Response:
    return _json({"key": request.app[STATE].webhook_secret})


async def list_collections(request: web.Request) -> web.Response:
    return _json({"next": None, "previous": None, "results": []})


async def fallback(request: web.Request) -> web.Response:
    return _not_found()


async def stats(request: web.Request) -> web.Response:
    """Request and reply counts (emulator-only, outside /v1, no auth), for other processes."""
    state = request.app[STATE]
    return _json(
        {
            "requests": [
                {"method": m, "route": r, "count": n} for (m, r), n in state.requests.items()
            ],
            "replies": [
                {"method": m, "route": r, "status": s, "count": n}
                for (m, r, s), n in state.statuses.items()
            ],
            "predictions": len(state.store.jobs),
        }
    )


def build_api_app(state: ApiState) -> web.Application:
    """The API application, every route under ``/v1``."""
    app = web.Application(middlewares=[_middleware])
    app[STATE] = state
    r = app.router
    v = "/v1"
    r.add_post(f"{v}/predictions", create_prediction)
    r.add_get(f"{v}/predictions", list_predictions)
    r.add_get(f"{v}/predictions/{{id}}", get_prediction)
    r.add_post(f"{v}/predictions/{{id}}/cancel", cancel_prediction)
    r.add_route("*", f"{v}/models", models_collection)
    r.add_get(f"{v}/models/{{owner}}/{{name}}", get_model)
    r.add_post(f"{v}/models/{{owner}}/{{name}}/predictions", create_model_prediction)
    r.add_get(f"{v}/models/{{owner}}/{{name}}/versions", list_versions)
    r.add_get(f"{v}/models/{{owner}}/{{name}}/versions/{{version}}", get_version)
    r.add_post(f"{v}/models/{{owner}}/{{name}}/versions/{{version}}/trainings", create_training)
    r.add_get(f"{v}/trainings", list_trainings)
    r.add_get(f"{v}/trainings/{{id}}", get_training)
    r.add_post(f"{v}/trainings/{{id}}/cancel", cancel_training)
    r.add_get(f"{v}/deployments", list_deployments)
    r.add_get(f"{v}/deployments/{{owner}}/{{name}}", get_deployment)
    r.add_post(f"{v}/deployments/{{owner}}/{{name}}/predictions", create_deployment_prediction)
    r.add_get(f"{v}/hardware", list_hardware)
    r.add_get(f"{v}/account", get_account)
    r.add_get(f"{v}/webhooks/default/secret", webhook_secret)
    r.add_get(f"{v}/collections", list_collections)
    add_file_routes(app)
    r.add_get("/_emulator/stats", stats)
    r.add_route("*", "/{tail:.*}", fallback)
    return app


# -- the streaming host ------------------------------------------------------------------


async def stream_events(request: web.Request) -> web.StreamResponse:
    """``GET /v1/streams/{key}``: SSE as Replicate's nchan-based stream host sends it."""
    state = request.app[STATE]
    state.stream_requests.append(dict(request.headers))
    job = state.store.streams.get(request.match_info["key"])
    if job is None or job.stream_gone:
        return web.Response(status=404, text="Not Found")
    fault = state.stream_faults[0] if state.stream_faults else None
    if fault is not None:
        fault.times -= 1
        if fault.times <= 0:
            state.stream_faults.pop(0)
    # Resume after the last event the client saw, as nchan does with Last-Event-ID.
    last = request.headers.get("Last-Event-ID")
    ids = [event_id for event_id, _, _ in job.events]
    cursor = ids.index(last) + 1 if last in ids else 0
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(b": hi\n\n")
    sent = 0
    while True:
        changed = job.changed
        while cursor < len(job.events):
            event_id, event, data = job.events[cursor]
            await response.write(encode_event(event, data, event_id))
            cursor += 1
            sent += 1
            if event == "done":
                await response.write_eof()
                return response
            if fault is not None and sent >= fault.after:
                if not fault.resumable:
                    job.stream_gone = True
                # Cut the line mid-stream, as a dropped connection does.
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
        try:
            await asyncio.wait_for(changed.wait(), state.stream_idle_timeout)
        except asyncio.TimeoutError:
            # After 30 s of silence the real host says so in a comment and hangs up.
            await response.write(b":408: 408 Request Timeout\n\n")
            await response.write_eof()
            return response


def side_app(state: ApiState, routes: dict[str, Handler]) -> web.Application:
    """A host beside the API (streams, files): its own port, no auth, GET routes only."""
    app = web.Application()
    app[STATE] = state
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return app


def build_stream_app(state: ApiState) -> web.Application:
    """The streaming host (``stream.replicate.com`` stand-in)."""
    return side_app(state, {"/v1/streams/{key}": stream_events, "/v1/files/{key}": stream_events})
