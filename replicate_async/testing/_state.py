"""The emulator's small pieces of state: its configuration, hosts, traffic log and faults.

Each is its own object; the HTTP handlers get them bundled (``_http.State``). Nothing
here knows about HTTP or about the other emulator modules.
"""

from __future__ import annotations

import collections
import random
from collections import Counter

import attrs

__all__ = ["Chaos", "DeliverySettings", "EmulatorConfig", "Fault", "Faults", "Hosts", "Traffic"]


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """How the emulator was configured (see :class:`~replicate_async.testing.Emulator`)."""

    start_delay: float = 0.0
    page_size: int = 100
    create_per_minute: float = 600
    other_per_minute: float = 3000
    get_per_minute: float = 3000
    create_burst: float | None = None
    other_burst: float | None = None
    get_burst: float | None = None
    enforce_limits: bool = False
    low_credit: bool = False
    stream_idle_timeout: float = 30.0
    max_file_size: int = 100 * 1024 * 1024


@attrs.define
class Hosts:
    """The root URLs of the emulator's three hosts, known once they listen."""

    api: str | None = None
    stream: str | None = None
    delivery: str | None = None

    @staticmethod
    def _started(url: str | None) -> str:
        if url is None:
            raise RuntimeError("the emulator is not started: use `async with Emulator() as emu`")
        return url

    @property
    def api_url(self) -> str:
        """The API's base URL, including ``/v1``."""
        return self._started(self.api)

    @property
    def stream_url(self) -> str:
        """The streaming host's root."""
        return self._started(self.stream)

    @property
    def delivery_url(self) -> str:
        """The file host's root."""
        return self._started(self.delivery)


@attrs.define
class Traffic:
    """What the hosts received, for tests to inspect."""

    #: requests to the API, by (method, route template)
    requests: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    #: replies of the API, by (method, route template, status)
    statuses: Counter[tuple[str, str, int]] = attrs.field(factory=Counter)
    #: headers of every request the delivery host received
    delivery: list[dict[str, str]] = attrs.field(factory=list)
    #: headers of every request the stream host received
    stream: list[dict[str, str]] = attrs.field(factory=list)
    #: (monotonic time, method, route, path) of the API's requests, newest last (the
    #: last million), to check a client's pace second by second and what it asked for
    log: collections.deque[tuple[float, str, str, str]] = attrs.field(
        factory=lambda: collections.deque(maxlen=1_000_000)
    )


@attrs.define(kw_only=True)
class Fault:
    """A failure injected into the next ``times`` requests matching host, method and route.

    ``host`` is ``"api"`` (default), ``"stream"`` or ``"delivery"``; ``method`` and
    ``route`` (a route template such as ``"/predictions/{id}"``) may be ``"*"``. What it
    does, in order, on every host: ``delay`` seconds of waiting first (on the API the
    request is read first, so the server still acts on it); ``status`` answers with that
    status and ``body`` instead of handling the request; ``reset_after`` drops the
    connection with no reply (on the API after handling the request: a create really
    happens); ``cut_after`` cuts the reply's body after that many events (stream host)
    or bytes (delivery host), and with ``gone=True`` a cut stream cannot be resumed
    (reconnections get 404).
    """

    method: str = "*"
    route: str = "*"
    host: str = "api"
    times: int = 1
    status: int | None = None
    body: bytes = b""
    content_type: str = "text/html"
    delay: float = 0.0
    reset_after: bool = False
    cut_after: int | None = None
    gone: bool = False

    def matches(self, host: str, method: str, route: str) -> bool:
        """Whether this fault applies to the request."""
        return (
            self.host == host
            and self.method in ("*", method.upper())
            and self.route in ("*", route)
        )


_THROTTLED = (
    b'{"title": "Request was throttled", "status": 429, '
    b'"detail": "Request was throttled. Expected available in 1 second."}'
)
_PROXY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class Chaos:
    """Random faults on a share of all requests: a bad day, for soak tests.

    Each request (to any host) meets a fault with probability ``rate``, of a kind drawn
    evenly from those its host can suffer: on the API a 429, a 500, a 502 proxy page, a
    503, a reply that is not JSON, a delay, or a reset after the work is done; on the
    stream and delivery hosts a 500 or 503, a delay, a reset before the reply or a body
    cut short. ``seed`` makes the draws repeatable; ``injected`` counts them by kind.
    """

    def __init__(self, rate: float, seed: int | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"chaos is a share of requests, 0 to 1; got {rate}")
        self.rate = rate
        self._random = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def pick(self, host: str) -> Fault | None:
        """A fault for one request to ``host``, or None (most of the time)."""
        if self.rate <= 0 or self._random.random() >= self.rate:
            return None
        kinds = _API_CHAOS if host == "api" else _SIDE_CHAOS
        kind = self._random.choice(kinds)
        self.injected[f"{host} {kind}"] += 1
        draw = self._random
        if kind == "429":
            return Fault(host=host, status=429, body=_THROTTLED, content_type="application/json")
        if kind in ("500", "503"):
            return Fault(host=host, status=int(kind), body=b'{"detail": "Internal error"}')
        if kind == "502":
            return Fault(host=host, status=502, body=_PROXY_PAGE)
        if kind == "not json":
            return Fault(host=host, status=200, body=b'{"id": ', content_type="application/json")
        if kind == "delay":
            return Fault(host=host, delay=draw.uniform(0.05, 0.5))
        if kind == "reset":
            return Fault(host=host, reset_after=True)
        # "cut": a few events of a stream, or some bytes of a file
        return Fault(
            host=host, cut_after=draw.randint(1, 3) if host == "stream" else draw.randint(1, 4096)
        )


_API_CHAOS = ("429", "500", "502", "503", "not json", "delay", "reset")
_SIDE_CHAOS = ("500", "503", "delay", "reset", "cut")


class Faults:
    """The one fault mechanism of every host: faults are added, and taken as they match.

    Queued faults come first; with :class:`Chaos` set, a request none matches may still
    meet a random one.
    """

    __slots__ = ("_queue", "chaos")

    def __init__(self, chaos: Chaos | None = None) -> None:
        self._queue: list[Fault] = []
        self.chaos = chaos

    def add(self, fault: Fault) -> None:
        """Queue a fault (first added, first used)."""
        if fault.host not in ("api", "stream", "delivery"):
            raise ValueError(
                f"fault host must be 'api', 'stream' or 'delivery', got {fault.host!r}"
            )
        if fault.times < 1:
            raise ValueError(f"a fault applies at least once, got times={fault.times}")
        # A copy: counting its uses down must not change the caller's object.
        self._queue.append(attrs.evolve(fault, method=fault.method.upper()))

    def take(self, host: str, method: str, route: str) -> Fault | None:
        """The first fault matching the request, used once (and dropped when used up)."""
        for fault in self._queue:
            if fault.matches(host, method, route):
                fault.times -= 1
                if fault.times <= 0:
                    self._queue.remove(fault)
                return fault
        return None if self.chaos is None else self.chaos.pick(host)


@attrs.define
class DeliverySettings:
    """How the delivery host behaves from now on (not one-off faults: modes)."""

    #: honour ``Range`` (False: answer 200 with the whole file, as some servers do)
    ranges: bool = True
    #: every output file is gone (404), as an hour after its prediction
    expired: bool = False
