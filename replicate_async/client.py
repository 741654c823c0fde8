"""``AsyncReplicate``, the facade: builds the Session, holds the resources, runs the main jobs.

It reads the configuration once, builds the Session and the one create path, holds the
resources, and runs run, stream and run_many over them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from ssl import SSLContext
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import urlsplit

import aiohttp

from ._aiter import AsyncClosing
from ._clock import Clock, Sleep, Timing
from ._create import Creator
from ._janitor import Janitor
from ._job import Job
from ._poller import Poller
from ._session import DEFAULT_BASE_URL, ClientConfig, Session
from ._transport import MAX_REPLY_SIZE, Response, Timeouts, Transport
from ._version import __version__
from ._watch import wait_for
from .errors import ValidationError, keep_secret, prediction_error
from .fanout import Progress, RunMany
from .files import decode_output
from .journal import Journal
from .limiter import RateLimiter
from .protocol.creates import Claims, CreateOptions
from .protocol.limits import RateLimits
from .protocol.polling import PollPolicy
from .protocol.refs import parse_ref
from .protocol.retry import RetryPolicy
from .protocol.schema import OutputPlan
from .receiver import Receiver
from .redis_limits import RedisRateLimits
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
from .streaming import PredictionStream, StreamPolicy
from .types import Prediction, SearchResults
from .use import DEFAULT_TTL, RemoteModel, SchemaCache

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .protocol.creates import RunArgs, StreamArgs

__all__ = ["DEFAULT_BASE_URL", "AsyncReplicate", "ClientConfig"]

T = TypeVar("T")


def _config(
    api_token: str | None,
    base_url: str | None,
    *,
    rate_limits: RateLimits,
    max_connections: int,
    timeouts: Timeouts | None,
    retry: RetryPolicy | None,
    polling: PollPolicy | None,
) -> ClientConfig:
    """Read the environment once, check everything, and freeze it."""
    token = api_token if api_token is not None else os.environ.get("REPLICATE_API_TOKEN")
    url = base_url or os.environ.get("REPLICATE_BASE_URL") or DEFAULT_BASE_URL
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
    return ClientConfig(
        api_token=token.strip() if token else None,
        base_url=url,
        rate_limits=rate_limits,
        max_connections=max_connections,
        timeouts=timeouts or Timeouts(),
        retry=retry or RetryPolicy(),
        polling=polling or PollPolicy(),
        user_agent=f"replicate-async/{__version__}",
    )


class AsyncReplicate(AsyncClosing):
    """An asyncio client for Replicate's HTTP API.

    Use it as ``async with AsyncReplicate() as client:`` or call ``await client.aclose()``
    when done. One client holds one connection pool; share it across tasks of one event
    loop rather than making one per request.

    ``ssl`` is the TLS context for every HTTPS connection (the API, file and stream
    hosts); by default, the system's trust as ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` say
    when the client is made (the emulator's pytest plugin points them at its authority).
    """

    def __init__(
        self,
        api_token: str | None = None,
        base_url: str | None = None,
        *,
        rate_limits: RateLimits | RedisRateLimits | None = None,
        max_connections: int = 100,
        max_reply_size: int = MAX_REPLY_SIZE,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        polling: PollPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | RedisRateLimits | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        if isinstance(rate_limits, RedisRateLimits):
            if limiter is not None:
                raise ValueError(
                    "pass the RedisRateLimits as rate_limits= or as limiter=, not beside "
                    "another limiter"
                )
            # Shared limits are a limiter: the state lives in Redis, not in this client.
            limiter, rate_limits = rate_limits, None
        if limiter is not None and rate_limits is not None:
            raise ValueError(
                "pass rate_limits= or limiter= (a shared RateLimiter), not both: "
                "the limiter already carries its RateLimits"
            )
        config = _config(
            api_token,
            base_url,
            rate_limits=limiter.limits if limiter else rate_limits or RateLimits(),
            max_connections=max_connections,
            timeouts=timeouts,
            retry=retry,
            polling=polling,
        )
        keep_secret(config.api_token)  # never in an error, whatever a server echoes
        # ``sleep`` and ``clock`` are injectable so retry and rate tests run on fake time.
        real = Timing()
        timing = Timing(monotonic=clock or real.monotonic, sleep=sleep or real.sleep)
        if max_reply_size < 1024:
            raise ValueError(f"max_reply_size must be at least 1024 bytes, got {max_reply_size}")
        transport = Transport(
            max_connections=config.max_connections,
            timeouts=config.timeouts,
            user_agent=config.user_agent,
            session=session,
            max_reply_size=max_reply_size,
            ssl_context=ssl,
        )
        limiter = limiter or RateLimiter(
            config.rate_limits, clock=timing.monotonic, sleep=timing.sleep
        )
        if isinstance(limiter, RedisRateLimits):
            # Counted per token: the keys carry a digest of it (never the token).
            limiter.bind(config.api_token or "", clock=timing.monotonic, sleep=timing.sleep)
        self._session = core = Session(config, transport, limiter, timing)
        claims = Claims(lookback=core.clock.lookback)
        self._poller = poller = Poller(core)
        self._janitor = janitor = Janitor(core, claims)
        self._creator = creator = Creator(core, poller, janitor, claims)

        self._schemas = SchemaCache(core)
        self.predictions = Predictions(core, creator, poller, janitor)
        self.models = Models(self._session, creator)
        self.deployments = Deployments(self._session, creator)
        self.trainings = Trainings(self._session, creator, poller, janitor)
        self.hardware = Hardware(self._session)
        self.account = Account(self._session)
        self.webhooks = Webhooks(self._session)
        self.collections = Collections(self._session)
        self.files = Files(self._session)

    @property
    def config(self) -> ClientConfig:
        """The frozen configuration."""
        return self._session.config

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<AsyncReplicate {self.config.base_url} {state}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> AsyncReplicate:
        self._session.transport.ensure_open()
        return self

    async def aclose(self) -> None:
        """Stop polling, finish clean-up (a few seconds at most), close the pool. Idempotent.

        (The pool is closed unless you passed your own aiohttp session.)
        """
        await self._poller.aclose()
        await self._janitor.aclose()
        await self._session.transport.aclose()
        limiter = self._session.limiter
        if isinstance(limiter, RedisRateLimits):
            await limiter.aclose()  # its Redis connections (made again if still shared)

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run."""
        return self._session.transport.closed

    # -- any endpoint ------------------------------------------------------------------

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        """Call any API endpoint through the client's limiter and retries (see Session)."""
        return await self._session.request(method, path, **kwargs)

    async def request_json(self, method: str, path: str, cls: type[T], **kwargs: Any) -> T:
        """:meth:`request`, with the JSON body structured into ``cls``."""
        return await self._session.request_json(method, path, cls, **kwargs)

    # -- the main jobs -------------------------------------------------------------------

    async def search(self, query: str, *, limit: int = 20) -> SearchResults:
        """Search Replicate (``GET /search``): models, best first, with collections and pages.

        ``limit`` (1-50) caps the models. ``client.models.search()`` is the older search, a
        plain paged list of models.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a non-empty query string")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise ValueError(f"limit must be a whole number from 1 to 50, got {limit!r}")
        return await self._session.request_json(
            "GET", "/search", SearchResults, params={"query": query, "limit": limit}
        )

    async def run(
        self,
        ref: str,
        input: Mapping[str, Any] | None = None,
        *,
        use_file_output: bool = True,
        timeout: float | None = None,
        cancel_on_exit: bool = True,
        webhook: str | Receiver | None = None,
        output_schema: str | None = None,
        **options: Unpack[RunArgs],
    ) -> Any:
        """Run a model and return its output.

        ``ref`` is ``owner/name``, ``owner/name:version`` or a version id. ``wait=True``
        (the default here) asks the server to hold the reply until done (``Prefer:
        wait``), a number of seconds holds it that long (1-60), ``False`` does not; either
        way the prediction is then polled until it ends (at most ``timeout`` seconds, if
        given). Output URLs become :class:`FileOutput` unless ``use_file_output=False``.
        Files in ``input`` (paths, bytes, binary file objects, aiofiles handles) are
        uploaded first, or inlined with ``file_encoding="data-uri"`` (up to 1 MB each).
        ``webhook`` (a URL), ``webhook_events_filter`` and ``cancel_after`` go to the
        create; ``webhook`` a :class:`Receiver` waits for the webhook instead of polling
        (polling only if it is later than the receiver's ``grace``). If the awaiting task
        is cancelled, the prediction is cancelled too (in the background, without
        delaying the caller), unless ``cancel_on_exit=False``. ``output_schema="auto"``
        decodes the output by the version's ``Output`` schema (files only where it says
        ``format: uri``; other strings stay strings, even URL-like ones), fetched once per
        model as :meth:`use` does; by default every URL-like string becomes a file.

        Raises :class:`PredictionFailed` or :class:`PredictionCanceled` if it ends badly.
        """
        target = parse_ref(ref)
        if output_schema not in (None, "auto"):
            raise ValueError(f'output_schema must be None or "auto", got {output_schema!r}')
        receiver = webhook if isinstance(webhook, Receiver) else None
        options.setdefault("wait", receiver is None)
        create = CreateOptions(input=input, **_with_webhook(webhook, dict(options)))
        plan = None
        if output_schema == "auto":
            plan = (await self._schemas.get(ref, DEFAULT_TTL)).schema.output_plan()
        if receiver is not None:
            await receiver.attach(self)
        prediction = await self._creator.create(
            target, create, Prediction, cancel_on_exit=cancel_on_exit
        )
        if not prediction.done:
            prediction = await wait_for(
                self._poller,
                prediction,
                key=target.label,
                timeout=timeout,
                janitor=self._janitor if cancel_on_exit else None,
                quiet=0.0 if receiver is None else receiver.grace,
            )
        return self.output_of(prediction, use_file_output=use_file_output, plan=plan)

    @overload
    def use(self, ref: str, *, ttl: float = DEFAULT_TTL) -> RemoteModel[Any]: ...

    @overload
    def use(self, ref: str, *, output: type[T], ttl: float = DEFAULT_TTL) -> RemoteModel[T]: ...

    def use(
        self, ref: str, *, output: type[Any] | None = None, ttl: float = DEFAULT_TTL
    ) -> RemoteModel[Any]:
        """A model as an async function: ``await client.use("owner/name")(prompt=...)``.

        No request until its first call, which fetches the model's schema once for this
        client (kept ``ttl`` seconds for ``owner/name``; for good for
        ``owner/name:version``). Calls check their input against it before any request
        and decode the output by it (see :mod:`replicate_async.use`). ``output`` states
        the output's type for type checkers (``output=list[FileOutput]``); it is not
        checked at run time.
        """
        del output  # a static hint only
        return RemoteModel(self, ref, self._schemas, ttl=ttl)

    def stream(
        self,
        ref: str,
        input: Mapping[str, Any] | None = None,
        *,
        policy: StreamPolicy | None = None,
        cancel_on_exit: bool = True,
        **options: Unpack[StreamArgs],
    ) -> PredictionStream:
        """Run a model with streaming output; iterate the events as they are made.

        ``async for event in client.stream("owner/name", input={...}): print(event, end="")``
        (``str(event)`` is the text of ``output`` events and "" for the rest). The
        prediction is created on the first iteration; ``stream.prediction`` has it then.
        Leaving the stream before its end (``break``, ``aclose()``, cancellation) cancels
        the prediction, unless ``cancel_on_exit=False``.
        """
        target = parse_ref(ref)
        create = CreateOptions(input=input, stream=True, **options)
        creator, poller = self._creator, self._poller

        async def start() -> Prediction:
            try:
                return await creator.create(
                    target, create, Prediction, cancel_on_exit=cancel_on_exit
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

        async def wait(prediction: Prediction) -> Prediction:
            return await wait_for(poller, prediction, key=target.label)

        on_abandon = self._janitor.cancel if cancel_on_exit else None
        return PredictionStream(self._session, start, wait, policy, on_abandon=on_abandon)

    def output_of(
        self,
        prediction: Prediction,
        *,
        use_file_output: bool = True,
        plan: OutputPlan | None = None,
    ) -> Any:
        """The output of a finished prediction, or the error it ended with.

        ``plan`` (a version's Output schema) says where the files are; without it every
        URL-like string becomes one.
        """
        error = prediction_error(prediction)
        if error is not None:
            raise error
        if use_file_output:
            return decode_output(prediction.output, self._session, plan)
        return prediction.output

    def run_many(
        self,
        ref: str,
        inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        concurrency: int = 50,
        use_file_output: bool = True,
        timeout: float | None = None,
        cancel_on_exit: bool | None = None,
        progress: Callable[[Progress], object] | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        replay: bool = True,
        webhook: str | Receiver | None = None,
        **options: Unpack[RunArgs],
    ) -> RunMany:
        """Run a model once per input, yielding :class:`RunResult` in completion order.

        At most ``concurrency`` predictions are in flight and inputs are pulled from
        ``inputs`` only as slots free up, so memory stays bounded for any number of
        inputs. One failure does not stop the others: it is in its result's ``error``.
        The options are those of :meth:`run`, for every input. Leaving the loop early
        (``break``, ``aclose()``, cancellation) cancels the predictions still running,
        unless ``cancel_on_exit=False`` (the default with a journal: the next run adopts
        them). ``progress`` is called with a :class:`Progress` as the counts change (at
        most ten times a second, and once at the end).

        ``journal`` (a path, or a :class:`Journal`) makes the job restartable: run it
        again with the same journal and inputs after a crash, and nothing is created
        twice; results it recorded are replayed (``replay=False``: those the caller
        took are skipped). See :mod:`replicate_async.journal`.

        ``webhook`` a :class:`Receiver`: creates carry its URL (and
        ``webhook_events_filter=["completed"]``), and predictions are polled only when
        their webhook is later than the receiver's ``grace``. A string is passed on as
        the create's webhook URL, as in :meth:`run`.
        """
        target = parse_ref(ref)
        receiver = webhook if isinstance(webhook, Receiver) else None
        # Held creates pay while the client polls; a receiver makes them pointless.
        options.setdefault("wait", receiver is None)
        # Checked now, once: a bad option fails before any work; each input is checked
        # as it is taken (evolve runs the same checks).
        template = CreateOptions(**_with_webhook(webhook, dict(options)))
        if journal is not None and not isinstance(journal, Journal):
            if not isinstance(journal, (str, os.PathLike)):
                raise TypeError(
                    f"journal must be a path or a Journal, got {type(journal).__name__}"
                )
            journal = Journal(journal)
        if cancel_on_exit is None:
            cancel_on_exit = journal is None

        def output_of(prediction: Prediction) -> Any:
            return self.output_of(prediction, use_file_output=use_file_output)

        job = Job(
            session=self._session,
            creator=self._creator,
            poller=self._poller,
            janitor=self._janitor,
            target=target,
            template=template,
            output_of=output_of,
            timeout=timeout,
            cancel_on_exit=cancel_on_exit,
            journal=journal,
            replay=replay,
            receiver=receiver,
        )
        return RunMany(
            job.one,
            inputs,
            concurrency,
            progress=progress,
            clock=self._session.timing.monotonic,
            hooks=job if journal is not None or receiver is not None else None,
        )


def _with_webhook(webhook: str | Receiver | None, options: dict[str, Any]) -> dict[str, Any]:
    """A create's options with ``webhook``: a URL as given, a receiver's for its completion."""
    if isinstance(webhook, Receiver):
        events = options.get("webhook_events_filter")
        if events is not None and "completed" not in events:
            raise ValueError(
                "webhook=receiver waits for the completed event: add 'completed' to "
                f"webhook_events_filter (got {list(events)!r})"
            )
        options["webhook"] = webhook.url
        options.setdefault("webhook_events_filter", ["completed"])
    elif webhook is not None:
        options["webhook"] = webhook
    return options
