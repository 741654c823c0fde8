"""The emulator's API host: Replicate's routes under ``/v1`` on aiohttp.web.

Replies follow the real service: problem+json errors (401 without rate-limit headers),
201 with ``Location`` on create, ``Prefer: wait``, ``Cancel-After``, paged lists, and
``ratelimit-*`` headers from a plain bucket per token. Faults (``Emulator.inject``) are
taken here, before auth, as on a flaky proxy in front of the real thing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from aiohttp import web

from ._catalog_api import add_catalog_routes
from ._files import add_file_routes
from ._http import (
    STATE,
    WEB_URL,
    Handler,
    State,
    base_url,
    invalid,
    json_reply,
    method_not_allowed,
    not_found,
    page_of,
    problem,
    read_json,
    request_method,
    route_of,
    token_of,
)
from ._jobs import InputError, Job, ModelSpec
from ._limits import throttled_detail
from ._schema import validate_body
from ._webhooks import WebhookFaults
from ._wire import parse_time

__all__ = ["build_api_app"]

CREATE_ROUTES = frozenset(
    {
        ("POST", "/predictions"),
        ("POST", "/models/{owner}/{name}/predictions"),
        ("POST", "/deployments/{owner}/{name}/predictions"),
    }
)
#: routes the schema marks public (search) or signed (a file download's signature)
_PUBLIC = frozenset({"/search", "/files/{file_id}/download"})
_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _bucket_kind(method: str, route: str) -> str:
    """Which of the token's buckets a request draws from."""
    if (method, route) in CREATE_ROUTES:
        return "create"
    if (method, route) == ("GET", "/predictions/{id}"):
        return "get"
    return "other"


# -- middleware ------------------------------------------------------------------------


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    route = route_of(request)
    if route.startswith("/_emulator/"):
        return await handler(request)  # the emulator's own: no faults, no auth, not counted
    method = request_method(request)
    state.traffic.requests[(method, route)] += 1
    state.traffic.log.append((time.monotonic(), method, route, request.path))
    response = await _serve(request, handler, state, method, route)
    state.traffic.statuses[(method, route, response.status)] += 1
    return response


async def _serve(
    request: web.Request, handler: Handler, state: State, method: str, route: str
) -> web.StreamResponse:
    """Faults, then auth, then rate limits, then the route's handler."""
    fault = state.faults.take("api", method, route)
    if fault is not None:
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
    if route in _PUBLIC:
        return await handler(request)  # the schema asks no token of these
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() not in ("bearer", "token") or token.strip() not in state.tokens:
        # The real 401 carries no rate-limit headers.
        return problem(401, "You did not pass a valid authentication token", "Unauthenticated")
    kind = _bucket_kind(method, route)
    bucket = state.limits.bucket(token.strip(), kind)
    now = time.monotonic()
    allowed = bucket.take(now) or not state.config.enforce_limits
    # Whole seconds until the next token, as the real headers and 429 texts give it.
    reset = bucket.reset(now)
    limit_headers = {
        "ratelimit-remaining": str(bucket.remaining(now)),
        "ratelimit-reset": str(reset),
    }
    if not allowed:
        detail = throttled_detail(state.config, bucket, kind, reset)
        low_credit = state.config.low_credit and kind == "create"
        extra: dict[str, Any] = {"retry_after": reset} if low_credit else {}
        reply = problem(429, detail, **extra)
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
    data = body["input"]
    try:
        spec.validate(data)
    except InputError as exc:
        return invalid(exc.problems)
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
    auth_token = token_of(request)
    job = state.jobs.new_job(
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
        state.jobs.cancel_after(job, cancel_after)
    entry = state.catalog.model(spec.ref)
    if entry is not None:
        entry.run_count += 1
    wait = _prefer_wait(request)
    if wait is not None:
        try:
            await asyncio.wait_for(asyncio.shield(job.done.wait()), wait)
        except asyncio.TimeoutError:
            pass
    payload = job.to_json(base_url(request), WEB_URL, held=wait is not None)
    return json_reply(payload, 201, {"Location": payload["urls"]["get"]})


def _job_json(request: web.Request, job: Job, *, legacy: bool = False) -> dict[str, Any]:
    # Trainings, and cancel replies, still come in the older serializer's shape (recorded).
    if legacy or job.kind == "training":
        return job.to_legacy_json(base_url(request), WEB_URL)
    return job.to_json(base_url(request), WEB_URL)


async def _create_body(request: web.Request, kind: str) -> dict[str, Any] | web.Response:
    """The create's JSON body once its own keys pass (the first of Replicate's two checks)."""
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    problems = validate_body(kind, body)
    return invalid(problems) if problems else body


async def create_prediction(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await _create_body(request, "version")
    if isinstance(body, web.Response):
        return body
    spec = state.catalog.resolve(body["version"])
    if spec is None:
        return problem(
            422,
            "The specified version does not exist (or perhaps you don't have permission to "
            "use it?)",
            "Invalid version or not permitted",
        )
    return await _create(request, spec, body)


def _latest(request: web.Request) -> ModelSpec | None:
    ref = f"{request.match_info['owner']}/{request.match_info['name']}"
    return request.app[STATE].catalog.latest(ref)


async def create_model_prediction(request: web.Request) -> web.Response:
    spec = _latest(request)
    if spec is None:
        return not_found()
    body = await _create_body(request, "model")
    if isinstance(body, web.Response):
        return body
    return await _create(request, spec, body)


async def create_deployment_prediction(request: web.Request) -> web.Response:
    ref = f"{request.match_info['owner']}/{request.match_info['name']}"
    spec = request.app[STATE].catalog.deployment_spec(ref)
    if spec is None:
        return not_found()
    body = await _create_body(request, "model")
    if isinstance(body, web.Response):
        return body
    return await _create(request, spec, body, deployment=ref)


def _job(request: web.Request, kind: str) -> Job | None:
    state = request.app[STATE]
    job = state.jobs.jobs.get(request.match_info["id"])
    token = token_of(request)
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
        return parse_time(value)
    except ValueError:
        raise ValueError(f"{name} must be an RFC 3339 timestamp, got {value!r}") from None


def _job_handlers(kind: str) -> tuple[Handler, Handler, Handler]:
    """GET one, POST cancel and GET the list, for predictions or trainings alike."""

    async def get(request: web.Request) -> web.StreamResponse:
        job = _job(request, kind)
        return not_found() if job is None else json_reply(_job_json(request, job))

    async def cancel(request: web.Request) -> web.StreamResponse:
        job = _job(request, kind)
        if job is None:
            return not_found()
        request.app[STATE].jobs.cancel(job)
        return json_reply(_job_json(request, job, legacy=True))

    async def list_(request: web.Request) -> web.StreamResponse:
        token = token_of(request)
        try:
            after = _query_time(request, "created_after")
            before = _query_time(request, "created_before")
        except ValueError as exc:
            return problem(400, str(exc), "Bad Request")
        source = request.query.get("source")
        if source is not None and (kind != "prediction" or source != "web"):
            # Only predictions take it, and only "web" (the documented enum).
            return problem(
                400, f'source must be one of the following: "web" (got {source!r})', "Bad Request"
            )

        def newest_first() -> Iterator[Job]:
            # Jobs are kept in creation order: walk back from the newest, and stop at the
            # first one older than created_after (the rest are older still).
            for job in reversed(request.app[STATE].jobs.jobs.values()):
                if after is not None and job.created_at < after:  # "at or after", as documented
                    return
                if (
                    job.kind == kind
                    and job.token == token
                    and (before is None or job.created_at < before)
                    # Every prediction made here came through the API, none from the web.
                    and source is None
                ):
                    yield job

        return page_of(request, newest_first(), lambda j: j.seq, lambda j: _job_json(request, j))

    return get, cancel, list_


get_prediction, cancel_prediction, list_predictions = _job_handlers("prediction")
get_training, cancel_training, list_trainings = _job_handlers("training")


# -- trainings, webhooks, the rest ---------------------------------------------------------


async def create_training(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ref = f"{request.match_info['owner']}/{request.match_info['name']}"
    spec = state.catalog.resolve(f"{ref}:{request.match_info['version']}")
    if spec is None:
        return not_found()
    body = await _create_body(request, "training")
    if isinstance(body, web.Response):
        return body
    destination = body["destination"]
    if destination.count("/") != 1:
        return problem(404, "The specified training destination does not exist")
    return await _create(request, spec, body, kind="training", destination=destination)


async def webhook_secret(request: web.Request) -> web.Response:
    return json_reply({"key": request.app[STATE].webhook_secret})


async def fallback(request: web.Request) -> web.Response:
    """No route: 405 if the path exists under another method, else 404."""
    method = request_method(request)
    for resource in request.app.router.resources():
        if resource is request.match_info.route.resource:
            continue
        match, allowed = await resource.resolve(request)
        if match is None and allowed:
            return method_not_allowed(method)
    return not_found()


async def stats(request: web.Request) -> web.Response:
    """Request and reply counts (emulator-only, outside /v1, no auth), for other processes."""
    state = request.app[STATE]
    return json_reply(
        {
            "requests": [
                {"method": m, "route": r, "count": n}
                for (m, r), n in state.traffic.requests.items()
            ],
            "replies": [
                {"method": m, "route": r, "status": s, "count": n}
                for (m, r, s), n in state.traffic.statuses.items()
            ],
            "predictions": len(state.jobs.jobs),
            "faults_injected": dict(state.faults.chaos.injected) if state.faults.chaos else {},
        }
    )


async def all_predictions(request: web.Request) -> web.Response:
    """Every job the emulator holds, briefly (emulator-only): for checks from any language."""
    jobs = request.app[STATE].jobs.jobs.values()
    return json_reply(
        [
            {
                "id": job.id,
                "kind": job.kind,
                "model": f"{job.model.owner}/{job.model.name}",
                "status": job.status,
                "input": job.input,
                "created_at": job.created_at.isoformat(),
            }
            for job in jobs
        ]
    )


async def webhook_deliveries(request: web.Request) -> web.Response:
    """Every webhook delivery attempt (emulator-only): for checks from any language."""
    return json_reply(
        [
            {
                "prediction_id": d.prediction_id,
                "event": d.event,
                "url": d.url,
                "webhook_id": d.webhook_id,
                "timestamp": d.timestamp,
                "attempt": d.attempt,
                "status": d.status,
                "error": d.error,
                "body": d.payload,
            }
            for d in request.app[STATE].webhooks.deliveries
        ]
    )


async def set_webhook_faults(request: web.Request) -> web.Response:
    """``{"drop": 0.1, "repeat": 0, "reorder": 0, "seed": 1}``: what ``emu.webhook_faults`` does."""
    body = await read_json(request)
    if isinstance(body, web.Response):
        return body
    unknown = set(body) - {"drop", "repeat", "reorder", "seed"}
    try:
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}: use drop, repeat, reorder, seed")
        faults = WebhookFaults(**body)
    except (TypeError, ValueError) as error:
        return problem(400, str(error), "Invalid webhook faults")
    request.app[STATE].webhooks.faults = faults
    return json_reply({"drop": faults.drop, "repeat": faults.repeat, "reorder": faults.reorder})


def build_api_app(state: State) -> web.Application:
    """The API application, every route under ``/v1``."""
    app = web.Application(middlewares=[_middleware])
    app[STATE] = state
    r = app.router
    v = "/v1"
    r.add_post(f"{v}/predictions", create_prediction)
    r.add_get(f"{v}/predictions", list_predictions)
    r.add_get(f"{v}/predictions/{{id}}", get_prediction)
    r.add_post(f"{v}/predictions/{{id}}/cancel", cancel_prediction)
    r.add_post(f"{v}/models/{{owner}}/{{name}}/predictions", create_model_prediction)
    r.add_post(f"{v}/models/{{owner}}/{{name}}/versions/{{version}}/trainings", create_training)
    r.add_get(f"{v}/trainings", list_trainings)
    r.add_get(f"{v}/trainings/{{id}}", get_training)
    r.add_post(f"{v}/trainings/{{id}}/cancel", cancel_training)
    r.add_post(f"{v}/deployments/{{owner}}/{{name}}/predictions", create_deployment_prediction)
    r.add_get(f"{v}/webhooks/default/secret", webhook_secret)
    add_catalog_routes(app)
    add_file_routes(app)
    r.add_get("/_emulator/stats", stats)
    r.add_get("/_emulator/predictions", all_predictions)
    r.add_get("/_emulator/webhooks", webhook_deliveries)
    r.add_post("/_emulator/webhook-faults", set_webhook_faults)
    r.add_route("*", "/{tail:.*}", fallback)
    return app
