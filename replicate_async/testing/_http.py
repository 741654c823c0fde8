"""What the emulator's hosts share: their state, and the HTTP helpers every handler uses.

Replies follow the real service: JSON bodies, problem+json errors (``title`` absent on
some), pages with absolute ``next`` links and opaque cursors. The hosts (``_api``,
``_files``, ``_stream``, ``_delivery``) import this module and nothing of each other.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
from aiohttp import web

from ._catalog import Catalog
from ._jobs import JobStore
from ._limits import ServerLimits
from ._outputs import OutputStore
from ._schema import InputProblem
from ._state import DeliverySettings, EmulatorConfig, Fault, Faults, Hosts, Traffic
from ._uploads import UploadStore
from ._webhooks import Webhooks

__all__ = [
    "STATE",
    "Handler",
    "State",
    "base_url",
    "invalid",
    "json_reply",
    "method_not_allowed",
    "not_found",
    "page_of",
    "problem",
    "read_json",
    "request_method",
    "route_of",
    "side_app",
    "side_fault",
    "token_of",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON = "application/json"
PROBLEM = "application/problem+json"


@attrs.frozen(kw_only=True)
class State:
    """Everything the handlers share, as separate small objects."""

    config: EmulatorConfig
    hosts: Hosts
    tokens: set[str]
    webhook_secret: str
    limits: ServerLimits
    catalog: Catalog
    jobs: JobStore
    uploads: UploadStore
    outputs: OutputStore
    traffic: Traffic
    faults: Faults
    delivery: DeliverySettings
    webhooks: Webhooks


STATE: web.AppKey[State] = web.AppKey("state", State)


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply, compact as the API writes it."""
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


def not_found() -> web.Response:
    """The API's 404 (its wording since 2025; "Not found." before)."""
    return problem(404, "The requested resource could not be found.")


def method_not_allowed(method: str) -> web.Response:
    """The API's 405, in Django REST framework's words."""
    return problem(405, f'Method "{method}" not allowed.')


def invalid(problems: list[InputProblem]) -> web.Response:
    """A 422 "Input validation failed", every problem listed, keys in the real order."""
    lines = "".join(
        f"- {p.field}: {p.description}\n" if p.field else f"- {p.description}\n" for p in problems
    )
    body = {
        "detail": lines,
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": [
            {"type": p.kind, "field": p.field, "description": p.description} for p in problems
        ],
    }
    return web.Response(
        body=json.dumps(body).encode(), status=422, headers={"Content-Type": PROBLEM}
    )


def route_of(request: web.Request) -> str:
    """The route template that matched, without ``/v1`` (``/predictions/{id}``)."""
    info = request.match_info.route.resource
    canonical = info.canonical if info is not None else request.path
    return canonical.removeprefix("/v1") or "/"


def token_of(request: web.Request) -> str:
    """The API token of an authenticated request (the middleware checked it)."""
    return request.headers["Authorization"].partition(" ")[2].strip()


def request_method(request: web.Request) -> str:
    """The method, with QUERY recognised.

    aiohttp's C parser (llhttp) does not know QUERY yet and reports "<unknown>"; the
    API's only QUERY route is search, so an unknown method there is taken as QUERY.
    """
    if request.method == "<unknown>":
        return "QUERY"
    return request.method


#: the web app's URL in ``urls.web`` and model pages (the real one: nothing serves it here)
WEB_URL = "https://replicate.com"


def base_url(request: web.Request) -> str:
    """The API base URL this request came in on (``http://host:port/v1``)."""
    return f"{request.scheme}://{request.host}/v1"


async def read_json(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or the 400 reply to send instead."""
    try:
        data = await request.json()
    except ValueError:
        return problem(400, "The request body is not valid JSON.", "Invalid JSON")
    if not isinstance(data, dict):
        return problem(400, "The request body must be a JSON object.", "Invalid JSON")
    return data


def _encode_cursor(key: int) -> str:
    return base64.urlsafe_b64encode(f"k:{key}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return int(text.removeprefix("k:")) if text.startswith("k:") else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def page_of(
    request: web.Request,
    items: Iterable[Any],
    key: Callable[[Any], int],
    render: Callable[[Any], Any],
    *,
    page_size: int | None = None,
) -> web.Response:
    """One page of ``items`` (in ``key`` order, descending), with an absolute ``next``.

    ``items`` is read lazily, only as far as the page needs: a list of 10,000
    predictions costs a page's worth of work, not 10,000.
    """
    state = request.app[STATE]
    cursor = request.query.get("cursor")
    after: int | None = None
    if cursor is not None:
        after = _decode_cursor(cursor)
        if after is None:
            return problem(400, "Invalid cursor.", "Bad Request")
    size = page_size if page_size is not None else state.config.page_size
    page: list[Any] = []
    more = False
    for item in items:
        if after is not None and key(item) >= after:
            continue
        if len(page) == size:
            more = True
            break
        page.append(item)
    next_url = None
    if more:
        next_url = str(request.url.update_query(cursor=_encode_cursor(key(page[-1]))))
    return json_reply({"next": next_url, "previous": None, "results": [render(i) for i in page]})


async def side_fault(request: web.Request, fault: Fault | None) -> web.Response | None:
    """What a fault on the stream or delivery host does before any reply: wait, answer, or hang up.

    Returns the reply to send instead of the real one, if the fault answers; raises to
    drop the connection for ``reset_after``; None to go on (``cut_after`` is the host's).
    """
    if fault is None:
        return None
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status is not None:
        return web.Response(
            body=fault.body, status=fault.status, headers={"Content-Type": fault.content_type}
        )
    if fault.reset_after:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    return None


def side_app(state: State, routes: dict[str, Handler]) -> web.Application:
    """A host beside the API (streams, files): its own port, no auth, GET routes only."""
    app = web.Application()
    app[STATE] = state
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return app
