"""``AsyncReplicate``: frozen config, lifecycle, the resources, and the one request path.

Every API call goes through :meth:`AsyncReplicate.request`: the rate limiter grants a
token, the transport sends, the reply's ``ratelimit-*`` headers correct the limiter, an
error status becomes an error, and the retry policy decides whether to go round again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import aiohttp
import attrs
import cattrs

from . import convert
from ._aiter import AsyncClosing, AsyncIteratorHandle
from ._transport import FormField, Response, Timeouts, Transport
from ._version import __version__
from .errors import (
    TOKEN_HELP,
    AuthenticationError,
    ConnectError,
    CreateOutcomeUnknownError,
    MalformedResponseError,
    ReplicateError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    ValidationError,
    error_from_response,
    parse_problem,
    prediction_error,
)
from .fanout import RunResult, run_many
from .files import decode_output
from .limits import RateLimiter, RateLimits, parse_stated_limit
from .polling import PollPolicy
from .refs import parse_ref
from .resources import (
    Account,
    Collections,
    Deployments,
    Files,
    Hardware,
    Models,
    Predictions,
    Trainings,
    Webhooks,
)
from .retry import Failure, RetryPolicy, decide, is_idempotent, parse_retry_after
from .streaming import PredictionStream, StreamPolicy
from .types import Prediction

__all__ = ["DEFAULT_BASE_URL", "AsyncReplicate", "ClientConfig"]

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


class AsyncReplicate(AsyncClosing):
    """An asyncio client for Replicate's HTTP API.

    Use it as ``async with AsyncReplicate() as client:`` or call ``await client.aclose()``
    when done. One client holds one connection pool; share it across tasks of one event
    loop rather than making one per request.
    """

    def __init__(
        self,
        api_token: str | None = None,
        base_url: str | None = None,
        *,
        rate_limits: RateLimits | None = None,
        max_connections: int = 100,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        polling: PollPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        token = api_token if api_token is not None else os.environ.get("REPLICATE_API_TOKEN")
        url = base_url or os.environ.get("REPLICATE_BASE_URL") or DEFAULT_BASE_URL
        if limiter is not None and rate_limits is not None:
            raise ValueError(
                "pass rate_limits= or limiter= (a shared RateLimiter), not both: "
                "the limiter already carries its RateLimits"
            )
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"base_url must be an absolute http(s) URL like {DEFAULT_BASE_URL!r}, got {url!r}"
            )
        url = url.rstrip("/")
        if not parts.path.strip("/"):
            # The official clients take the host alone ("https://api.replicate.com") and add
            # /v1 themselves; accept that form too, so one REPLICATE_BASE_URL serves both.
            url += "/v1"
        self.config = ClientConfig(
            api_token=token.strip() if token else None,
            base_url=url,
            rate_limits=limiter.limits if limiter else rate_limits or RateLimits(),
            max_connections=max_connections,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
            polling=polling or PollPolicy(),
            user_agent=f"replicate-async/{__version__}",
        )
        self._sleep = sleep or asyncio.sleep
        self._transport = Transport(
            max_connections=max_connections,
            timeouts=self.config.timeouts,
            user_agent=self.config.user_agent,
            session=session,
        )
        # ``sleep`` and ``clock`` are injectable so retry and rate tests run on fake time.
        self._limiter = limiter or RateLimiter(self.config.rate_limits, clock=clock, sleep=sleep)

        self.predictions = Predictions(self)
        self.models = Models(self)
        self.deployments = Deployments(self)
        self.trainings = Trainings(self)
        self.hardware = Hardware(self)
        self.account = Account(self)
        self.webhooks = Webhooks(self)
        self.collections = Collections(self)
        self.files = Files(self)

    def __repr__(self) -> str:
        state = "closed" if self._transport.closed else "open"
        return f"<AsyncReplicate {self.config.base_url} {state}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> AsyncReplicate:
        self._transport.ensure_open()
        return self

    async def aclose(self) -> None:
        """Close the connection pool (unless you passed your own session). Idempotent."""
        await self._transport.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run."""
        return self._transport.closed

    # -- the one request path ------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url = path if path.startswith(("http://", "https://")) else self.config.base_url + path
        if params:
            query = urlencode({k: v for k, v in params.items() if v is not None})
            if query:
                url += ("&" if "?" in url else "?") + query
        return url

    def _is_api_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme.lower(), parts.netloc.lower()) == self.config.origin

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
        prefer_wait: bool | float | None = None,
    ) -> Response:
        """Send one API request through limiter, transport, error mapping and retries.

        ``path`` is relative to ``base_url`` or an absolute URL on the API's origin (a
        ``next`` page link). ``is_create`` selects the create rate limit. ``idempotent``
        (by default: from the method) decides the retry rule: a request that is not is
        re-sent only when the server provably did not act on it.
        """
        self._transport.ensure_open()
        url = self._url(path, params)
        # Relative paths are on the API by construction; absolute ones (next links) are checked.
        if path[:1] != "/" and not self._is_api_origin(url):
            raise ValueError(
                f"{url!r} is not on the API's origin ({self.config.base_url}); refusing to "
                "send the API token there."
            )
        token = self.config.api_token
        if not token:
            raise AuthenticationError(
                f"No Replicate API token. {TOKEN_HELP}", method=method, url=url
            )
        send_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        read_timeout: float | None = None
        if prefer_wait is not None and prefer_wait is not False:
            # The server holds the reply up to N seconds (60 when unspecified).
            seconds = 60.0 if prefer_wait is True else float(prefer_wait)
            send_headers["Prefer"] = "wait" if prefer_wait is True else f"wait={int(seconds)}"
            read_timeout = max(
                self.config.timeouts.read, seconds + self.config.timeouts.wait_margin
            )
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":"), default=_not_json).encode()
            content_type = "application/json"
        if content_type:
            send_headers["Content-Type"] = content_type
        if headers:
            send_headers.update(headers)
        if idempotent is None:
            idempotent = is_idempotent(method, path)
        bucket = self._limiter.bucket(is_create)
        policy = self.config.retry
        failures = throttles = 0
        first_sent = 0.0
        while True:
            await bucket.acquire()
            if not first_sent:
                first_sent = time.time()
            # A multipart body is built afresh for each attempt: file parts are streams.
            form = await multipart() if multipart is not None else None
            try:
                resp = await self._transport.send(
                    method,
                    url,
                    headers=send_headers,
                    data=content,
                    form=form,
                    read_timeout=read_timeout,
                )
            except TransportError as exc:
                error: ReplicateError = exc
                failure = (
                    Failure.NOT_SENT
                    if isinstance(exc, ConnectError)
                    else Failure.TIMEOUT
                    if isinstance(exc, RequestTimeoutError)
                    else Failure.LOST
                )
                status, server_delay = None, None
            else:
                remaining = resp.headers.get("ratelimit-remaining")
                if remaining is not None:
                    with contextlib.suppress(ValueError):
                        bucket.observe(float(remaining))
                if resp.status < 400:
                    bucket.grant()
                    return resp
                failure, status = Failure.STATUS, resp.status
                parsed, _, detail = parse_problem(resp.body)
                server_delay = parse_retry_after(resp.headers, parsed, now=time.time())
                error = error_from_response(
                    method, url, status, resp.reason, resp.body, retry_after=server_delay
                )
                if status == 429:
                    stated = parse_stated_limit(detail)
                    if stated is not None:
                        bucket.limit(*stated)  # the server told us the rate: no need to guess
                    # The whole bucket waits, not only this request: the rest would get 429.
                    pause = server_delay if server_delay is not None else 1.0
                    bucket.pause(pause) if stated is not None else bucket.throttled(pause)
            if status == 429:
                throttles += 1
            else:
                failures += 1
            delay = decide(
                policy,
                idempotent=idempotent,
                failure=failure,
                status=status,
                attempt=throttles if status == 429 else failures,
                server_delay=server_delay,
            )
            if delay is None:
                # Sent, then failed without a word from the server, or with a 5xx: it may
                # have acted. (Never sent, or refused with 4xx: it did not.)
                sent = failure in (Failure.TIMEOUT, Failure.LOST) or isinstance(error, ServerError)
                if not idempotent and sent:
                    raise _outcome_unknown(error, method, url, first_sent) from error
                raise error
            await self._sleep(delay)

    def decode(self, resp: Response, cls: type[T]) -> T:
        """Structure a reply's JSON body into ``cls``; a body that is not one is an error."""
        method, url = resp.method, resp.url
        try:
            data = json.loads(resp.body)
        except ValueError:
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
        except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
            raise MalformedResponseError(
                f"{method} {url}: the reply does not look like a {getattr(cls, '__name__', cls)} "
                f"({exc}).",
                status=resp.status,
                method=method,
                url=url,
            ) from exc

    async def request_json(self, method: str, path: str, cls: type[T], **kwargs: Any) -> T:
        """:meth:`request`, then :meth:`decode` the body into ``cls``."""
        return self.decode(await self.request(method, path, **kwargs), cls)

    # -- the main jobs -------------------------------------------------------------------

    async def run(
        self,
        ref: str,
        input: Mapping[str, Any] | None = None,
        *,
        wait: bool | float = True,
        use_file_output: bool = True,
        timeout: float | None = None,
        webhook: str | None = None,
        webhook_events_filter: Iterable[str] | None = None,
        cancel_after: str | float | None = None,
        file_encoding: str = "upload",
    ) -> Any:
        """Run a model and return its output.

        ``ref`` is ``owner/name``, ``owner/name:version`` or a version id. ``wait=True``
        asks the server to hold the reply until done (``Prefer: wait``), a number of
        seconds holds it that long (1-60), ``False`` does not; either way the prediction
        is then polled until it ends (at most ``timeout`` seconds, if given). Output URLs
        become :class:`FileOutput` unless ``use_file_output=False``. Files in ``input``
        (paths, bytes, binary file objects, aiofiles handles) are uploaded first, or
        inlined with ``file_encoding="data-uri"`` (up to 1 MB each).

        Raises :class:`PredictionFailed` or :class:`PredictionCanceled` if it ends badly.
        """
        target = parse_ref(ref)
        prediction = await self.predictions._create_target(
            target,
            input,
            wait=wait,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            cancel_after=cancel_after,
            file_encoding=file_encoding,
        )
        if not prediction.done:
            prediction = await self.predictions.wait(prediction, timeout=timeout)
        return self.output_of(prediction, use_file_output=use_file_output)

    def stream(
        self,
        ref: str,
        input: Mapping[str, Any] | None = None,
        *,
        webhook: str | None = None,
        webhook_events_filter: Iterable[str] | None = None,
        cancel_after: str | float | None = None,
        policy: StreamPolicy | None = None,
        file_encoding: str = "upload",
    ) -> PredictionStream:
        """Run a model with streaming output; iterate the events as they are made.

        ``async for event in client.stream("owner/name", input={...}): print(event, end="")``
        (``str(event)`` is the text of ``output`` events and "" for the rest). The
        prediction is created on the first iteration; ``stream.prediction`` has it then.
        """
        target = parse_ref(ref)

        async def start() -> Prediction:
            try:
                return await self.predictions._create_target(
                    target,
                    input,
                    stream=True,
                    webhook=webhook,
                    webhook_events_filter=webhook_events_filter,
                    cancel_after=cancel_after,
                    file_encoding=file_encoding,
                )
            except ValidationError as error:
                if "stream" not in (error.detail or "").lower():
                    raise
                raise ValidationError(
                    f"{target.label} does not stream its output (the API says: "
                    f"{error.detail}). Use client.run({ref!r}, ...) for it instead.",
                    status=error.status,
                    title=error.title,
                    detail=error.detail,
                    method=error.method,
                    url=error.url,
                    body=error.body,
                ) from error

        return PredictionStream(self, start, policy)

    def output_of(self, prediction: Prediction, *, use_file_output: bool = True) -> Any:
        """The output of a finished prediction, or the error it ended with."""
        error = prediction_error(prediction)
        if error is not None:
            raise error
        if use_file_output:
            return decode_output(prediction.output, self._transport)
        return prediction.output

    def run_many(
        self,
        ref: str,
        inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        concurrency: int = 50,
        wait: bool | float = True,
        use_file_output: bool = True,
        timeout: float | None = None,
        file_encoding: str = "upload",
    ) -> AsyncIteratorHandle[RunResult]:
        """Run a model once per input, yielding :class:`RunResult` in completion order.

        At most ``concurrency`` predictions are in flight and inputs are pulled from
        ``inputs`` only as slots free up, so memory stays bounded for any number of
        inputs. One failure does not stop the others: it is in its result's ``error``.
        """
        target = parse_ref(ref)
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")

        async def one(item: Mapping[str, Any]) -> Any:
            prediction = await self.predictions._create_target(
                target, item, wait=wait, file_encoding=file_encoding
            )
            if not prediction.done:
                prediction = await self.predictions.wait(prediction, timeout=timeout)
            return prediction, self.output_of(prediction, use_file_output=use_file_output)

        return AsyncIteratorHandle(run_many(one, inputs, concurrency))


def _not_json(value: Any) -> Any:
    raise TypeError(
        f"input value of type {type(value).__name__} is not JSON: pass strings, numbers, "
        "booleans, lists and dicts (for a file, upload it somewhere and pass its URL)."
    )


def _outcome_unknown(
    exc: ReplicateError, method: str, url: str, first_sent: float
) -> CreateOutcomeUnknownError:
    after = datetime.fromtimestamp(first_sent, timezone.utc)
    before = datetime.now(timezone.utc)
    return CreateOutcomeUnknownError(
        f"{exc.message} The request was sent, so what it creates may exist; it was not "
        "re-sent, to avoid running the model twice. Look for it with "
        f"client.predictions.list(created_after=...) (sent between {after.isoformat()} and "
        f"{before.isoformat()}) before creating it again.",
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        method=method,
        url=url,
        sent_after=after,
        sent_before=before,
    )
