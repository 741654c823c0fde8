"""A real, local Replicate API server for tests: ``async with Emulator() as emu:``.

It listens on 127.0.0.1 (random ports), speaks Replicate's HTTP API closely enough that
any client works against it (this one, the official one, curl), and serves built-in
deterministic models under the owner ``emulator`` plus any model you register as a
Python function. See the README's "Testing with the emulator" section.
"""

from __future__ import annotations

import base64
import secrets
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .._aiter import AsyncClosing
from ._api import build_api_app
from ._builtin import builtin_models
from ._catalog import Catalog, CollectionEntry, DeploymentEntry
from ._delivery import build_delivery_app
from ._http import WEB_URL, State
from ._jobs import Job, JobStore, ModelFunction, ModelSpec, RunContext
from ._limits import ServerLimits
from ._outputs import OutputStore
from ._schema import ConcatenateIterator, Input
from ._state import Chaos, DeliverySettings, EmulatorConfig, Fault, Faults, Hosts, Traffic
from ._stream import build_stream_app
from ._tls import TrustFiles, authority_pem, server_context, write_trust_files
from ._uploads import UploadStore
from ._webhooks import Delivery, WebhookFaults, Webhooks

__all__ = [
    "ConcatenateIterator",
    "Delivery",
    "Emulator",
    "Fault",
    "Input",
    "ModelSpec",
    "RunContext",
    "WebhookFaults",
]


class Emulator(AsyncClosing):
    """Replicate's API on 127.0.0.1, for tests and demos.

    ``url`` is the base URL (ending in ``/v1``) and ``token`` a valid API token; pass both
    to a client. ``start_delay`` is how long predictions stay ``starting``; ``page_size``
    the size of list pages.

    Rate limits are token buckets per API token, as Replicate's headers show them: one
    for the three create endpoints, one for ``GET /predictions/{id}`` and one for the
    rest. ``create_per_minute`` / ``get_per_minute`` / ``other_per_minute`` refill them
    and ``create_burst`` / ``get_burst`` / ``other_burst`` size them (by default a
    minute's worth for creates and the rest, 20 minutes' worth for prediction GETs: 600,
    60,000 and 3,000, as the recorded replies show 599, 59999 and 2999 left after one).
    ``ratelimit-remaining`` / ``ratelimit-reset`` are always sent;
    with ``enforce_limits=True`` a request finding its bucket empty gets Replicate's 429
    ("Request was throttled. Expected available in 1 second."), or with
    ``low_credit=True`` the wording that states the reduced create limit. Scale the rates
    up (with the client's) to run rate tests in seconds.

    ``tls``: the file and stream hosts speak HTTPS, as ``replicate.delivery`` and the
    stream host do (``"all"``: the API too; ``False``: plain HTTP everywhere), with
    certificates from a throwaway authority made in memory. ``ca_file`` and
    ``ca_bundle`` are files other programs can trust it by (``NODE_EXTRA_CA_CERTS``,
    ``SSL_CERT_FILE``), removed when the emulator stops; ``ssl_context()`` is a client
    context that trusts it. ``username`` is the account every token belongs to: models
    and deployments created through the API are owned by it.

    Predictions and trainings created with ``webhook`` get signed deliveries of their
    ``webhook_events_filter`` events, throttled and retried as Replicate's are
    (``webhook_retry_scale`` scales the retry waits); ``webhook_deliveries`` records
    every attempt and :meth:`webhook_faults` loses, repeats or reorders some.

    ``chaos`` (0 to 1) is the share of requests, on every host, that meet a random fault
    (see :class:`~replicate_async.testing._state.Chaos`; ``chaos_seed`` repeats a run;
    ``faults_injected`` counts them): a bad day on demand, for soak tests of code built
    on Replicate. Faults queued with :meth:`inject` come first.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        start_delay: float = 0.0,
        page_size: int = 100,
        create_per_minute: float = 600,
        other_per_minute: float = 3000,
        get_per_minute: float = 3000,
        create_burst: float | None = None,
        other_burst: float | None = None,
        get_burst: float | None = None,
        enforce_limits: bool = False,
        low_credit: bool = False,
        stream_idle_timeout: float = 30.0,
        max_file_size: int = 100 * 1024 * 1024,
        chaos: float = 0.0,
        chaos_seed: int | None = None,
        tls: bool | str = True,
        username: str = "emulator",
        webhook_retry_scale: float = 1.0,
    ) -> None:
        if tls not in (True, False, "all"):
            raise ValueError(f"tls must be True, False or 'all', got {tls!r}")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.tls = tls
        self.trust_files: TrustFiles | None = None
        self.token = token or "r8_emulator_" + secrets.token_hex(16)
        self.host = host
        self._port = port
        self.config = EmulatorConfig(
            start_delay=start_delay,
            page_size=page_size,
            create_per_minute=create_per_minute,
            other_per_minute=other_per_minute,
            get_per_minute=get_per_minute,
            create_burst=create_burst,
            other_burst=other_burst,
            get_burst=get_burst,
            enforce_limits=enforce_limits,
            low_credit=low_credit,
            stream_idle_timeout=stream_idle_timeout,
            max_file_size=max_file_size,
        )
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        hosts = Hosts()
        uploads = UploadStore(max_file_size)
        outputs = OutputStore(hosts)
        self._jobs = JobStore(
            start_delay=start_delay, hosts=hosts, outputs=outputs, uploads=uploads
        )
        if not webhook_retry_scale >= 0:
            raise ValueError(f"webhook_retry_scale must be >= 0, got {webhook_retry_scale!r}")

        def render(job: Job) -> dict[str, Any]:
            # What a GET of it would return now: trainings in their older shape.
            if job.kind == "training":
                return job.to_legacy_json(hosts.api_url, WEB_URL)
            return job.to_json(hosts.api_url, WEB_URL)

        self._webhooks = Webhooks(self.webhook_secret, render, retry_scale=webhook_retry_scale)
        self._jobs.listener = self._webhooks.event
        self._catalog = Catalog(username=username)
        builtins = builtin_models()
        for spec in builtins:
            readme = f"# {spec.ref}\n\n{spec.description}\n"
            self._catalog.add_version(spec, builtin=True, readme=readme)
        self._catalog.add_collection(
            "emulator",
            "Emulator models",
            "The emulator's built-in models: deterministic, fast, for tests.",
            [spec.ref for spec in builtins],
        )
        self._state = State(
            config=self.config,
            hosts=hosts,
            tokens={self.token},
            webhook_secret=self.webhook_secret,
            limits=ServerLimits(self.config),
            catalog=self._catalog,
            jobs=self._jobs,
            uploads=uploads,
            outputs=outputs,
            traffic=Traffic(),
            faults=Faults(Chaos(chaos, chaos_seed) if chaos else None),
            delivery=DeliverySettings(),
            webhooks=self._webhooks,
        )
        self._runners: list[web.AppRunner] = []

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> Emulator:
        """Start listening: the API, the delivery host and the stream host, each on a port."""
        if self._runners:
            return self
        try:
            await self._start()
        except BaseException:
            await self.stop()  # a port in use, say: nothing left listening, no files left
            raise
        return self

    async def _start(self) -> None:
        hosts, state = self._state.hosts, self._state
        secure = self.tls is not False
        if secure:
            self.trust_files = write_trust_files()
        api = await self._serve(build_api_app(state), self._port, secure=self.tls == "all")
        hosts.api = f"{'https' if self.tls == 'all' else 'http'}://{self.host}:{api}/v1"
        scheme = "https" if secure else "http"
        delivery = await self._serve(build_delivery_app(state), 0, secure=secure)
        hosts.delivery = f"{scheme}://{self.host}:{delivery}"
        stream = await self._serve(build_stream_app(state), 0, secure=secure)
        hosts.stream = f"{scheme}://{self.host}:{stream}"

    async def _serve(self, app: web.Application, port: int, *, secure: bool = False) -> int:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        context = server_context() if secure else None
        site = web.TCPSite(runner, self.host, port, ssl_context=context)
        await site.start()
        self._runners.append(runner)
        return int(runner.addresses[-1][1])

    async def stop(self) -> None:
        """Stop running predictions and close every listener and connection."""
        await self._jobs.close()
        await self._webhooks.close()
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        self._state.uploads.close()
        if self.trust_files is not None:
            self.trust_files.remove()
            self.trust_files = None

    @property
    def ca_file(self) -> str:
        """The authority's certificate alone (PEM): for ``NODE_EXTRA_CA_CERTS``, curl."""
        return str(self._trust().ca_file)

    @property
    def ca_bundle(self) -> str:
        """The system's authorities and the emulator's (PEM): for ``SSL_CERT_FILE``."""
        return str(self._trust().bundle_file)

    def _trust(self) -> TrustFiles:
        if self.trust_files is None:
            raise RuntimeError(
                "no certificate files: the emulator is not started, or runs with tls=False"
            )
        return self.trust_files

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting the system's authorities and the emulator's."""
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=authority_pem().decode())
        return context

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def aclose(self) -> None:
        """Same as :meth:`stop`."""
        await self.stop()

    @property
    def url(self) -> str:
        """The API base URL, including ``/v1``."""
        return self._state.hosts.api_url

    @property
    def root_url(self) -> str:
        """The base URL without ``/v1``: the form the official ``replicate`` package takes."""
        return self.url.removesuffix("/v1")

    @property
    def stream_url(self) -> str:
        """The streaming host's root (another origin, as ``stream.replicate.com`` is)."""
        return self._state.hosts.stream_url

    @property
    def delivery_url(self) -> str:
        """Where output files are served (another port: another origin, as on Replicate)."""
        return self._state.hosts.delivery_url

    # -- models ------------------------------------------------------------------------

    def add_model(
        self,
        ref: str,
        fn: ModelFunction,
        *,
        inputs: dict[str, Any] | None = None,
        output: Any = Any,
        description: str | None = None,
        streams: bool = False,
        files: bool = False,
        version: str | None = None,
        visibility: str = "public",
        readme: str | None = None,
        schema: dict[str, Any] | None = None,
    ) -> ModelSpec:
        """Serve ``fn(input, ctx)`` as model ``owner/name``; returns its spec (``.version``).

        ``fn`` may be sync or async; it returns the output, and may call ``ctx.log()``,
        ``ctx.emit()`` and ``ctx.file()``. Raising makes the prediction ``failed``.
        ``inputs`` declares the inputs (``{"prompt": Input(str), "n": Input(int, ge=1,
        default=1)}``, or the older ``{"name": ("string", default_or_...)}``): bad input
        is then a 422 worded as Replicate's, and the version's schema lists them.
        ``output`` is the type ``fn`` returns (``str``, ``Path``, ``list[Path]``,
        ``Iterator[str]``, ``ConcatenateIterator[str]``, a dict of name to type): it
        becomes the schema's ``Output``, and decides whether predictions carry a stream
        (iterators: text; files: a file stream). ``streams=True`` / ``files=True`` say the
        same without a declared output. Registering the ref again replaces its version;
        another ``version`` id adds one (the newest is what ``owner/name`` runs).
        ``schema`` publishes that OpenAPI document as the version's schema instead of the
        one made from the declarations (a recorded one, to test a client against it).
        """
        owner, sep, name = ref.partition("/")
        if not sep or not owner or not name or "/" in name:
            raise ValueError(f"model ref must be 'owner/name', got {ref!r}")
        if visibility not in ("public", "private"):
            raise ValueError(f"visibility must be 'public' or 'private', got {visibility!r}")
        spec = ModelSpec(
            owner=owner,
            name=name,
            fn=fn,
            inputs=inputs,
            output=output,
            description=description,
            streams=streams,
            files=files,
            version=version or "",
            schema=schema,
        )
        facts: dict[str, Any] = {"visibility": visibility}
        if readme is not None:
            facts["readme"] = readme
        return self._catalog.add_version(spec, **facts)

    def model(self, ref: str, **kwargs: Any) -> Callable[[ModelFunction], ModelFunction]:
        """Decorator form of :meth:`add_model`."""

        def register(fn: ModelFunction) -> ModelFunction:
            self.add_model(ref, fn, **kwargs)
            return fn

        return register

    def add_deployment(
        self,
        ref: str,
        model: str,
        *,
        hardware: str = "cpu",
        min_instances: int = 0,
        max_instances: int = 1,
    ) -> DeploymentEntry:
        """Serve deployment ``owner/name`` running the (registered) ``model``'s newest version."""
        return self._catalog.add_deployment(
            ref,
            model,
            hardware=hardware,
            min_instances=min_instances,
            max_instances=max_instances,
        )

    def add_collection(
        self, slug: str, name: str, models: list[str], *, description: str = ""
    ) -> CollectionEntry:
        """Serve a collection of (registered) models at ``GET /collections/{slug}``."""
        return self._catalog.add_collection(slug, name, description, models)

    def add_example(self, ref: str, prediction_id: str) -> None:
        """Show a prediction among a model's examples (the first is its default example)."""
        entry = self._catalog.model(ref)
        if entry is None:
            raise ValueError(f"unknown model {ref!r}: register it first")
        if prediction_id not in self._jobs.jobs:
            raise ValueError(f"unknown prediction {prediction_id!r}")
        entry.examples.append(prediction_id)

    def signed_download_url(
        self, file_id: str, *, owner: str | None = None, ttl: int = 3600
    ) -> str:
        """A signed ``.../files/{id}/download`` URL for an upload, valid ``ttl`` seconds."""
        if file_id not in self._state.uploads.files:
            raise ValueError(f"unknown file {file_id!r}")
        who = owner or self._catalog.username
        expiry = int(time.time()) + ttl
        signature = self._state.uploads.signature(who, file_id, expiry)
        query = urllib.parse.urlencode({"owner": who, "expiry": expiry, "signature": signature})
        return f"{self.url}/files/{file_id}/download?{query}"

    def add_token(self, token: str) -> None:
        """Accept another API token (its predictions are separate, as on Replicate)."""
        self._state.tokens.add(token)

    # -- inspection ---------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        """The refs of every model it serves (``owner/name``)."""
        return sorted(self._catalog.models)

    @property
    def catalog(self) -> Catalog:
        """Its models, versions, deployments and collections (read-only use)."""
        return self._catalog

    @property
    def requests(self) -> Counter[tuple[str, str]]:
        """Requests seen, by (method, route), e.g. ``("GET", "/predictions/{id}")``."""
        return self._state.traffic.requests

    def count(self, method: str, route: str) -> int:
        """How many requests matched ``method`` and ``route`` (a route template)."""
        return self._state.traffic.requests[(method.upper(), route)]

    @property
    def faults_injected(self) -> dict[str, int]:
        """How many random faults chaos injected, by host and kind ("api 503": 12)."""
        chaos = self._state.faults.chaos
        return dict(chaos.injected) if chaos is not None else {}

    def request_times(self, method: str | None = None, route: str | None = None) -> list[float]:
        """When (``time.monotonic()``) the API received each matching request, oldest first."""
        wanted = None if method is None else method.upper()
        return [
            at
            for at, m, r, _ in self._state.traffic.log
            if wanted in (None, m) and route in (None, r)
        ]

    def request_paths(self, method: str | None = None, route: str | None = None) -> list[str]:
        """The paths of the API's matching requests (``/v1/predictions/abc``), oldest first."""
        wanted = None if method is None else method.upper()
        return [
            path
            for _, m, r, path in self._state.traffic.log
            if wanted in (None, m) and route in (None, r)
        ]

    def peak_rate(
        self, method: str | None = None, route: str | None = None, *, window: float = 1.0
    ) -> int:
        """The most matching requests the API received within any ``window`` seconds."""
        times = self.request_times(method, route)
        peak = start = 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            peak = max(peak, end - start + 1)
        return peak

    def count_status(self, status: int, method: str | None = None, route: str | None = None) -> int:
        """How many replies had ``status`` (optionally only for one method and route)."""
        return sum(
            n
            for (m, r, s), n in self._state.traffic.statuses.items()
            if s == status and method in (None, m) and route in (None, r)
        )

    @property
    def predictions(self) -> dict[str, Job]:
        """Every prediction and training the emulator holds, by id (read-only use)."""
        return self._jobs.jobs

    @property
    def webhook_deliveries(self) -> list[Delivery]:
        """Every webhook delivery attempt so far, in the order they were made.

        Each has the prediction's id, the event, the URL, its ``webhook-id`` and
        timestamp, the body sent, the attempt number and the receiver's status (None
        when no answer came: an error, or a fault dropped it).
        """
        return self._webhooks.deliveries

    def webhook_faults(
        self,
        *,
        drop: float = 0.0,
        repeat: float = 0.0,
        reorder: float = 0.0,
        seed: int | None = None,
    ) -> WebhookFaults:
        """Make webhook deliveries from now on fail as the shares (0-1) say.

        ``drop``: lost, never retried; ``repeat``: sent twice; ``reorder``: held back
        0.2-1 s, so that later ones overtake them. ``seed`` repeats the choices. All zero:
        faithful again.
        """
        faults = WebhookFaults(drop=drop, repeat=repeat, reorder=reorder, seed=seed)
        self._webhooks.faults = faults
        return faults

    @property
    def delivery_requests(self) -> list[dict[str, str]]:
        """Headers of every request the delivery host received."""
        return self._state.traffic.delivery

    @property
    def stream_requests(self) -> list[dict[str, str]]:
        """Headers of every request the streaming host received."""
        return self._state.traffic.stream

    @property
    def uploads(self) -> dict[str, Any]:
        """Files uploaded through ``POST /v1/files``, by id (read-only use)."""
        return dict(self._state.uploads.files)

    # -- faults -------------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Make the next matching request(s) fail (see :class:`Fault`).

        The one mechanism behind every helper below, for the API, the stream host and
        the delivery host.
        """
        self._state.faults.add(fault)

    def fail_next(
        self,
        method: str,
        route: str,
        *,
        status: int = 500,
        body: bytes | str = b"<html><body><h1>500 Internal Server Error</h1></body></html>",
        content_type: str = "text/html",
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` and ``body``."""
        data = body.encode() if isinstance(body, str) else body
        self.inject(
            Fault(
                method=method,
                route=route,
                times=times,
                status=status,
                body=data,
                content_type=content_type,
            )
        )

    def delay_next(self, method: str, route: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next matching request(s) ``seconds`` before handling them."""
        self.inject(Fault(method=method, route=route, times=times, delay=seconds))

    def reset_next(self, method: str, route: str, *, times: int = 1) -> None:
        """Handle the next matching request(s), then drop the connection with no reply."""
        self.inject(Fault(method=method, route=route, times=times, reset_after=True))

    def drop_stream_after(self, events: int, *, resumable: bool = True, times: int = 1) -> None:
        """Cut the next ``times`` stream connections after ``events`` events.

        A client should reconnect with ``Last-Event-ID`` and carry on. With
        ``resumable=False`` the stream is gone after the cut (reconnections get 404), as
        when a stream expires: the client has to fall back on the prediction's output.
        """
        self.inject(Fault(host="stream", times=times, cut_after=events, gone=not resumable))

    def cut_downloads_after(self, nbytes: int, *, times: int = 1) -> None:
        """Drop the next ``times`` output downloads after ``nbytes`` bytes of body."""
        self.inject(Fault(host="delivery", times=times, cut_after=nbytes))

    @property
    def delivery_ranges(self) -> bool:
        """Whether the delivery host honours ``Range`` (set False: it answers 200 whole)."""
        return self._state.delivery.ranges

    @delivery_ranges.setter
    def delivery_ranges(self, value: bool) -> None:
        self._state.delivery.ranges = value

    def expire_outputs(self) -> None:
        """Make every output file 404, as an hour after its prediction."""
        self._state.delivery.expired = True
