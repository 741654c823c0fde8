"""Completion by webhooks: a receiver that hands Replicate's deliveries to a client.

Polling, however well scheduled, is traffic; a webhook tells a job a prediction ended
with no request at all. :class:`Receiver` is an aiohttp.web handler (and, if you like,
the small server around it) that takes each delivery, checks its signature and age
(:func:`~replicate_async.webhooks.verify`), drops repeats by ``webhook-id``, keeps the
newest state of each prediction whatever order deliveries arrive in, and hands it to
the client's poller, where waits end as if a poll had seen it.

``run_many(..., webhook=receiver)`` (``run``, ``predictions.wait`` too) sends creates
with the receiver's public URL and ``webhook_events_filter=["completed"]``, and the
poller leaves those predictions alone for ``grace`` seconds at a time: with every
webhook arriving, a job makes no GET at all; one whose webhook was lost is polled
once its grace is over, so a lost delivery costs a poll, never a result. Behind a
reverse proxy or a tunnel, pass the ``public_url`` Replicate should call and bind
wherever the proxy forwards to.
"""

from __future__ import annotations

import collections
import json
import time
from typing import TYPE_CHECKING, Any

import attrs
from aiohttp import web

from ._aiter import AsyncClosing
from .protocol import convert
from .types import Prediction, Status, WebhookSecret
from .webhooks import WebhookVerificationError, verify

if TYPE_CHECKING:
    from ._poller import Poller
    from ._session import Session
    from .client import AsyncReplicate

__all__ = ["Receiver", "ReceiverStats"]

#: the largest delivery read (a prediction's JSON, outputs included)
MAX_BODY = 16 * 1024 * 1024
_RANK = {Status.STARTING: 0, Status.PROCESSING: 1}


@attrs.define
class ReceiverStats:
    """What the receiver got, delivery by delivery.

    Accepted; refused (a bad signature, or stale); repeated (an id seen before);
    unreadable (not a prediction); and those that came before it could check them
    (no secret yet: answered 503, so that Replicate tries again).
    """

    accepted: int = 0
    rejected: int = 0
    repeated: int = 0
    unreadable: int = 0
    unready: int = 0


class Receiver(AsyncClosing):
    """Takes Replicate's webhook deliveries for one or more clients (see the module).

    ``public_url``: the URL Replicate posts to (a tunnel's, a proxy's); by default the
    address it binds (``host``, ``port``: 0 picks a free one) and ``path``. ``secret``:
    the account's ``whsec_...`` signing secret; by default asked of the API when a
    client attaches. ``tolerance``: the oldest delivery accepted, in seconds (None: no
    check). ``grace``: how long a waited-for prediction is left to its webhook before
    it is polled (again), in seconds. Memory is bounded: the newest state of at most
    ``remember`` predictions (and as many webhook-ids), each kept at most ``keep``
    seconds if no wait takes it.

    Use it as ``async with Receiver(...) as receiver:`` (it serves on its own port), or
    mount :meth:`handler` in your own aiohttp app (``app.router.add_post(path,
    receiver.handler)``) and give the app's public URL.
    """

    def __init__(
        self,
        public_url: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/replicate/webhook",
        secret: str | None = None,
        tolerance: float | None = 300,
        grace: float = 60.0,
        remember: int = 10_000,
        keep: float = 600.0,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if not grace > 0:
            raise ValueError(f"grace must be a positive number of seconds, got {grace!r}")
        if remember < 1:
            raise ValueError(f"remember must be at least 1, got {remember!r}")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must be an http(s) URL, got {public_url!r}")
        self._public_url = public_url
        self.host = host
        self.port = port
        self.path = path
        self.secret = secret
        self.tolerance = tolerance
        self.grace = grace
        self.stats = ReceiverStats()
        self._remember = remember
        # The newest state of each prediction a delivery told of, until a wait takes its
        # end; the ends taken (so that a late, older delivery is not news); the
        # webhook-ids seen. Each bounded by ``remember``, oldest forgotten first.
        self._latest: collections.OrderedDict[str, tuple[Prediction, float]] = (
            collections.OrderedDict()
        )
        self._keep = keep
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._pollers: list[Poller] = []
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"Receiver({self.url if self._bound else self._public_url!r})"

    # -- serving -----------------------------------------------------------------------

    @property
    def _bound(self) -> bool:
        return self._runner is not None or self._public_url is not None

    @property
    def url(self) -> str:
        """The URL creates carry: the public one, else where it listens."""
        if self._public_url is not None:
            return self._public_url
        if self._runner is None:
            raise RuntimeError(
                "the receiver is not listening: `async with Receiver() as r`, or pass "
                "public_url= when you mount its handler in your own app"
            )
        port = self._runner.addresses[-1][1]
        return f"http://{self.host}:{port}{self.path}"

    async def start(self) -> Receiver:
        """Serve on ``host``:``port`` (a port of its own; not needed when mounted)."""
        if self._runner is not None:
            return self
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(self.path, self.handler)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        return self

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def aclose(self) -> None:
        """Stop serving (mounted handlers are your app's to stop)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- clients -----------------------------------------------------------------------

    async def attach(self, client: AsyncReplicate) -> None:
        """Hand deliveries to ``client``'s waits (fetching the signing secret if needed).

        ``run``, ``run_many`` and ``predictions.wait`` given ``webhook=receiver`` do this.
        """
        await self._attach(client._session, client._poller)

    async def _attach(self, session: Session, poller: Poller) -> None:
        if self.secret is None:
            reply = await session.request_json("GET", "/webhooks/default/secret", WebhookSecret)
            self.secret = reply.key
        if poller not in self._pollers:
            self._pollers.append(poller)
            poller.attach_source(self.take)

    def latest(self, prediction_id: str) -> Prediction | None:
        """The newest state a delivery brought of a prediction, until a wait took its end."""
        found = self._latest.get(prediction_id)
        return None if found is None else found[0]

    def take(self, prediction_id: str) -> Prediction | None:
        """The newest state known of a prediction; an end is handed out once."""
        found = self._latest.get(prediction_id)
        if found is None:
            return None
        snapshot = found[0]
        if snapshot.done:
            self._forget(prediction_id)
        return snapshot

    def _forget(self, prediction_id: str) -> None:
        self._latest.pop(prediction_id, None)
        self._ended[prediction_id] = None
        while len(self._ended) > self._remember:
            self._ended.popitem(last=False)

    # -- deliveries --------------------------------------------------------------------

    async def handler(self, request: web.Request) -> web.Response:
        """The aiohttp.web handler for deliveries (POST)."""
        secret = self.secret
        if secret is None:
            # Not ready to check signatures: Replicate tries again later.
            self.stats.unready += 1
            return web.Response(status=503, text="not ready")
        body = await request.read()
        try:
            verify(request.headers, body, secret, tolerance=self.tolerance)
        except WebhookVerificationError:
            self.stats.rejected += 1
            return web.Response(status=401, text="bad signature")
        webhook_id = request.headers.get("webhook-id", "")
        if webhook_id in self._seen:
            self.stats.repeated += 1
            return web.Response(status=200, text="seen")
        try:
            data: Any = json.loads(body)
            snapshot = convert.structure(data, Prediction)
        except Exception:  # not JSON, or not a prediction's shape (cattrs says which)
            self.stats.unreadable += 1
            return web.Response(status=400, text="not a prediction")
        self._remember_id(webhook_id)
        self.stats.accepted += 1
        if self._newer(snapshot):
            now = time.monotonic()
            self._latest[snapshot.id] = (snapshot, now)
            self._latest.move_to_end(snapshot.id)
            # Bounded by count and by age: a state no wait took within ``keep`` seconds
            # (its wait ended by a poll first, or it is another program's prediction)
            # is let go.
            latest = self._latest
            while latest and (
                len(latest) > self._remember or now - next(iter(latest.values()))[1] > self._keep
            ):
                latest.popitem(last=False)
            # Every live poller hears it; once one of them ends a wait with it, it is spent.
            self._pollers = [p for p in self._pollers if not p.closed]
            ended = [poller.push(snapshot) for poller in self._pollers]
            if any(ended):
                self._forget(snapshot.id)
        return web.Response(status=200, text="ok")

    def _remember_id(self, webhook_id: str) -> None:
        self._seen[webhook_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    def _newer(self, snapshot: Prediction) -> bool:
        """Whether ``snapshot`` is news beside what is known (deliveries come in any order)."""
        if snapshot.id in self._ended:
            return False  # its end was handed over: nothing after it is news
        found = self._latest.get(snapshot.id)
        if found is None:
            return True
        known = found[0]
        if known.done:
            return False  # an end is final; a late "processing" says nothing new
        if snapshot.done:
            return True
        old, new = _RANK.get(known.status, 1), _RANK.get(snapshot.status, 1)
        if new != old:
            return new > old
        # Same status: logs and output only grow.
        return len(snapshot.logs or "") > len(known.logs or "") or _size(snapshot.output) > _size(
            known.output
        )


def _size(output: object) -> int:
    if isinstance(output, (list, str)):
        return len(output)
    return 0 if output is None else 1
