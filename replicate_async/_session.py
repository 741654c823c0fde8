"""The Session: frozen config, transport, limiter and timing, and the ONE request path.

Every API call goes through :meth:`Session.request`, a loop of three decisions:

1. the limiter grants a token, the transport sends;
2. :func:`~.protocol.replies.interpret` says what came back (:class:`Outcome`), and the
   limiter learns from it (``feedback``);
3. :func:`~.protocol.retry.decide` says: return, retry after a delay, raise, or the
   outcome is unknown (a create that may have run must not be sent twice).

Resources, streams, pagers and downloads hold a Session; none of them touches the
transport or the limiter themselves.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlencode, urlsplit

import attrs
import cattrs
import cattrs.v

from ._clock import Timing
from ._transport import FormField, StreamingBody, Timeouts, Transport
from .errors import (
    TOKEN_HELP,
    AuthenticationError,
    CreateOutcomeUnknownError,
    MalformedResponseError,
    TransportError,
)
from .limiter import Limiter
from .protocol import convert
from .protocol.clock import ServerClock
from .protocol.limits import RateLimits, lane_for
from .protocol.polling import PollPolicy
from .protocol.replies import Response, interpret
from .protocol.retry import Action, RetryPolicy, decide, is_idempotent

__all__ = ["DEFAULT_BASE_URL", "ClientConfig", "Session"]

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.replicate.com/v1"


def _redacted(token: str | None) -> str:
    return "None" if token is None else "'r8_…'"


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Everything a client was configured with, read once and frozen.

    The token is kept out of ``repr``: printing a config (or a client) never shows it.
    """

    api_token: str | None = attrs.field(repr=_redacted)
    base_url: str
    rate_limits: RateLimits
    max_connections: int
    timeouts: Timeouts
    retry: RetryPolicy
    polling: PollPolicy
    user_agent: str

    @property
    def origin(self) -> tuple[str, str]:
        """(scheme, host:port) of the API: the only origin that ever gets the token."""
        parts = urlsplit(self.base_url)
        return parts.scheme.lower(), parts.netloc.lower()


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


def _not_json(value: Any) -> Any:
    raise TypeError(
        f"input value of type {type(value).__name__} is not JSON: pass strings, numbers, "
        "booleans, lists and dicts (for a file, upload it somewhere and pass its URL)."
    )


# One encoder for every body: json.dumps with options builds a new encoder on each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_not_json)


def _describe(exc: BaseException, kind: type | None) -> str:
    """One wrong field, in the converter's words ("expected a string, got NoneType None")."""
    text = str(exc)
    if isinstance(exc, (TypeError, ValueError)) and text.startswith(("expected", "not a")):
        return text
    return cattrs.v.format_exception(exc, kind)


class _Prepared(NamedTuple):
    """One request, ready to send as often as the retry policy allows."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    read_timeout: float | None
    #: the attempt's overall deadline (a held create's is its wait and a margin)
    total: float | None
    idempotent: bool
    #: the rate-limit lane it draws from (protocol.limits.LANES)
    lane: str


class Session:
    """What every API call needs: config, transport, limiter, timing; and the request loop."""

    __slots__ = ("clock", "config", "limiter", "timing", "transport")

    def __init__(
        self,
        config: ClientConfig,
        transport: Transport,
        limiter: Limiter,
        timing: Timing,
    ) -> None:
        self.config = config
        self.transport = transport
        self.limiter = limiter
        self.timing = timing
        #: the API server's clock, from its replies' Date headers (for create recovery)
        self.clock = ServerClock()

    async def sleep(self, seconds: float) -> None:
        """Sleep through the injected sleep (fake in tests)."""
        await self.timing.sleep(seconds)

    # -- the one request path ------------------------------------------------------------

    def on_api_origin(self, url: str) -> bool:
        """Whether an absolute URL is on the API's origin (scheme, host and port)."""
        if not url.startswith(("http://", "https://")):
            return False
        parts = urlsplit(url)
        return (parts.scheme.lower(), parts.netloc.lower()) == self.config.origin

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url = path if path.startswith(("http://", "https://")) else self.config.base_url + path
        if params:
            query = urlencode({k: v for k, v in params.items() if v is not None})
            if query:
                url += ("&" if "?" in url else "?") + query
        return url

    def _prepare(
        self,
        method: str,
        path: str,
        *,
        json_body: Any,
        content: bytes | None,
        content_type: str | None,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        is_create: bool,
        idempotent: bool | None,
        prefer_wait: bool | float,
    ) -> _Prepared:
        url = self._url(path, params)
        # Relative paths are on the API by construction; absolute ones (next links) are checked.
        if path[:1] != "/" and not self.on_api_origin(url):
            raise ValueError(
                f"{url!r} is not on the API's origin ({self.config.base_url}); refusing "
                "to send the API token there."
            )
        token = self.config.api_token
        if not token:
            raise AuthenticationError(
                f"No Replicate API token. {TOKEN_HELP}", method=method, url=url
            )
        send = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        read_timeout: float | None = None
        timeouts = self.config.timeouts
        total = timeouts.total
        if prefer_wait is not False:
            # The server holds the reply up to N seconds (60 when unspecified).
            seconds = 60.0 if prefer_wait is True else float(prefer_wait)
            send["Prefer"] = "wait" if prefer_wait is True else f"wait={int(seconds)}"
            read_timeout = max(timeouts.read, seconds + timeouts.wait_margin)
            if total is not None:
                total = max(total, seconds + timeouts.wait_margin)
        if json_body is not None:
            content = _ENCODER.encode(json_body).encode()
            content_type = "application/json"
        if content_type:
            send["Content-Type"] = content_type
        if headers:
            send.update(headers)
        return _Prepared(
            method,
            url,
            send,
            content,
            read_timeout,
            total,
            is_idempotent(method, path) if idempotent is None else idempotent,
            lane_for(method, path, is_create=is_create),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        multipart: Callable[[], Awaitable[list[FormField]]] | None = None,
        is_create: bool = False,
        idempotent: bool | None = None,
        prefer_wait: bool | float = False,
        on_send: Callable[[float], None] | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Response:
        """Send one API request through limiter, transport, interpretation and retries.

        ``path`` is relative to ``base_url`` or an absolute URL on the API's origin (a
        ``next`` page link). ``is_create`` selects the create rate limit. ``idempotent``
        (by default: from the method) decides the retry rule: a request that is not is
        re-sent only when the server provably did not act on it. ``on_send`` hears the
        (Unix) time the first attempt left, once it has. ``before_send`` is awaited once,
        after the rate limiter let the request go and before anything is sent (a job's
        journal records the create there); if it raises, nothing is sent.
        """
        self.transport.ensure_open()
        req = self._prepare(
            method,
            path,
            json_body=json_body,
            content=content,
            content_type=content_type,
            params=params,
            headers=headers,
            is_create=is_create,
            idempotent=idempotent,
            prefer_wait=prefer_wait,
        )
        lane = self.limiter.lane(req.lane)
        timing, policy = self.timing, self.config.retry
        failures = throttles = 0
        started = sent_at = 0.0
        while True:
            ticket = await lane.acquire()
            if not sent_at:
                if before_send is not None:
                    await before_send()
                started, sent_at = timing.monotonic(), timing.wall()
                if on_send is not None:
                    on_send(sent_at)
            attempt_at = timing.wall()
            try:
                # A multipart body is built afresh for each attempt: file parts are streams.
                form = await multipart() if multipart is not None else None
                result: Response | TransportError = await self.transport.send(
                    req.method,
                    req.url,
                    headers=req.headers,
                    data=req.content,
                    form=form,
                    read_timeout=req.read_timeout,
                    total=req.total,
                )
            except TransportError as exc:
                result = exc
            now = timing.wall()
            if isinstance(result, Response):
                self.clock.observe(result.headers.get("Date"), attempt_at, now)
            outcome = interpret(result, now=now)
            lane.feedback(outcome, ticket)
            if outcome.ok:
                assert outcome.reply is not None
                return outcome.reply
            if outcome.throttled:
                throttles += 1
            else:
                failures += 1
            decision = decide(
                policy,
                outcome,
                idempotent=req.idempotent,
                attempt=throttles if outcome.throttled else failures,
                elapsed=timing.monotonic() - started,
            )
            if decision.action is Action.RETRY:
                await timing.sleep(decision.delay)
                continue
            error = outcome.error
            assert error is not None
            if decision.action is Action.UNKNOWN:
                raise CreateOutcomeUnknownError.after(
                    error, sent_after=_utc(sent_at), sent_before=_utc(timing.wall())
                ) from error
            raise error

    def decode(self, resp: Response, cls: type[T]) -> T:
        """Structure a reply's JSON body into ``cls``; a body that is not one is an error."""
        method, url = resp.method, resp.url
        try:
            data = json.loads(resp.body)
        except (ValueError, RecursionError):  # not JSON, or nested past any sense
            snippet = resp.body[:120].decode("utf-8", "replace")
            raise MalformedResponseError(
                f"{method} {url}: expected JSON from the API, got {snippet!r} "
                f"(status {resp.status}). Check base_url points at the API (ending in /v1).",
                status=resp.status,
                method=method,
                url=url,
            ) from None
        try:
            return convert.structure(data, cls)
        except cattrs.BaseValidationError as exc:
            found = cattrs.transform_error(exc, path="reply", format_exception=_describe)
            problems = "; ".join(found[:5])
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            problems = f"{type(exc).__name__}: {exc}"
        name = getattr(cls, "__name__", str(cls))
        # Raised outside the handler, unchained: the converter's exception holds the
        # server's values, and its words (scrubbed) are all the message needs.
        raise MalformedResponseError(
            f"{method} {url}: the reply is not a valid {name}: {problems}.",
            status=resp.status,
            method=method,
            url=url,
        )

    async def request_json(self, method: str, path: str, cls: type[T], **kwargs: Any) -> T:
        """:meth:`request`, then :meth:`decode` the body into ``cls``."""
        return self.decode(await self.request(method, path, **kwargs), cls)

    async def open(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        read_timeout: float | None = None,
        buffer: int | None = None,
    ) -> StreamingBody:
        """GET a body to read in chunks (a download, an event stream) from any host.

        These live on other hosts than the API (``replicate.delivery``, the stream host):
        no Authorization header is ever added here, and no rate-limit token is taken.
        ``buffer``: bytes read ahead of the reader (see :meth:`Transport.open`).
        """
        return await self.transport.open(
            "GET", url, headers=headers, read_timeout=read_timeout, buffer=buffer
        )
