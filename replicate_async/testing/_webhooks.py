"""The emulator's webhooks: delivered, signed and throttled as Replicate does, faulted on demand.

A prediction or training created with ``webhook`` gets a POST of its current state for
each event in its ``webhook_events_filter`` (all four by default): ``start`` when it
starts, ``output`` and ``logs`` as they grow (at most one each 500 ms, the latest state
going out at the end of the window, as Replicate throttles them), ``completed`` when it
ends. Each carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
(``v1,`` and the base64 HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` keyed with the
decoded part of the account's ``whsec_`` secret). A delivery that fails or is not
answered 2xx is tried again after 0.5, 1, 2, 4 and 8 s (scaled by ``retry_scale``).

``emu.webhook_faults(drop=, repeat=, reorder=, seed=)`` makes a share of deliveries
never arrive, arrive twice, or arrive late (so that a later one overtakes them): what a
receiver must survive. Every attempt is recorded in ``emu.webhook_deliveries``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs

from ._jobs import Job

__all__ = ["Delivery", "WebhookFaults", "Webhooks", "sign"]

#: events sent when a create names none
ALL_EVENTS = ("start", "output", "logs", "completed")
#: the least time between two output (or logs) deliveries of one prediction
THROTTLE = 0.5
#: waits between attempts of a delivery that failed
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header for a delivery, as Replicate (and Svix) make it."""
    key = base64.b64decode(secret.split("_", 1)[1])
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


@attrs.define(kw_only=True)
class Delivery:
    """One attempt to deliver one event (what tests inspect)."""

    prediction_id: str
    event: str
    url: str
    webhook_id: str
    timestamp: int
    body: bytes
    attempt: int
    #: the receiver's answer; None if none came (an error, or a fault dropped it)
    status: int | None = None
    error: str | None = None
    at: float = attrs.field(factory=time.monotonic)

    @property
    def payload(self) -> dict[str, Any]:
        """The prediction as delivered."""
        data: dict[str, Any] = json.loads(self.body)
        return data


@attrs.define(kw_only=True)
class WebhookFaults:
    """Shares of deliveries dropped, repeated or held back (seeded, to be replayed)."""

    drop: float = 0.0
    repeat: float = 0.0
    reorder: float = 0.0
    seed: int | None = None
    rng: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        for name in ("drop", "repeat", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share from 0 to 1, got {value!r}")
        self.rng = random.Random(self.seed)


@attrs.define
class _Throttle:
    last: float = -1e9
    timer: asyncio.TimerHandle | None = None


class Webhooks:
    """Sends the webhooks of every job that asked for them."""

    def __init__(
        self, secret: str, render: Callable[[Job], dict[str, Any]], *, retry_scale: float = 1.0
    ) -> None:
        self._secret = secret
        self._render = render
        self.retry_scale = retry_scale
        self.faults = WebhookFaults()
        self.deliveries: list[Delivery] = []
        self._throttles: dict[tuple[str, str], _Throttle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def event(self, job: Job, kind: str) -> None:
        """``kind`` happened to ``job``: deliver it if the job asked (throttled)."""
        if job.webhook is None:
            return
        if kind == "completed":  # the end supersedes what a throttle still holds
            for key in ((job.id, "output"), (job.id, "logs")):
                throttle = self._throttles.pop(key, None)
                if throttle is not None and throttle.timer is not None:
                    throttle.timer.cancel()
        wanted = job.webhook_events_filter or ALL_EVENTS
        if kind not in wanted:
            return
        if kind not in ("output", "logs"):
            self._send(job, kind)
            return
        throttle = self._throttles.setdefault((job.id, kind), _Throttle())
        now = time.monotonic()
        if throttle.timer is not None:
            return  # the held delivery will carry the latest state when it goes
        if now - throttle.last >= THROTTLE:
            throttle.last = now
            self._send(job, kind)
            return
        loop = asyncio.get_running_loop()

        def release() -> None:
            throttle.timer = None
            throttle.last = time.monotonic()
            if not job.terminal:
                self._send(job, kind)

        throttle.timer = loop.call_later(throttle.last + THROTTLE - now, release)

    def _send(self, job: Job, kind: str) -> None:
        assert job.webhook is not None
        body = json.dumps(self._render(job), separators=(",", ":")).encode()
        delivery: dict[str, Any] = {
            "prediction_id": job.id,
            "event": kind,
            "url": job.webhook,
            "webhook_id": "msg_" + secrets.token_urlsafe(18),
            "timestamp": int(time.time()),
            "body": body,
        }
        faults = self.faults
        if faults.drop and faults.rng.random() < faults.drop:
            self.deliveries.append(
                Delivery(attempt=1, error="dropped by webhook_faults", **delivery)
            )
            return
        copies = 2 if faults.repeat and faults.rng.random() < faults.repeat else 1
        late = faults.reorder and faults.rng.random() < faults.reorder
        delay = faults.rng.uniform(0.2, 1.0) if late else 0.0
        for _ in range(copies):
            task = asyncio.get_running_loop().create_task(self._deliver(delivery, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: dict[str, Any], delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession()
        for attempt, wait in enumerate((*RETRY_DELAYS, None), start=1):
            # The same message (webhook-id) each time, signed afresh with the time of
            # this attempt: a late retry must not fail a receiver's timestamp window.
            if attempt > 1:
                delivery = {**delivery, "timestamp": int(time.time())}
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Replicate-Webhooks (replicate_async emulator)",
                "webhook-id": delivery["webhook_id"],
                "webhook-timestamp": str(delivery["timestamp"]),
                "webhook-signature": sign(
                    self._secret, delivery["webhook_id"], delivery["timestamp"], delivery["body"]
                ),
            }
            record = Delivery(attempt=attempt, **delivery)
            self.deliveries.append(record)
            try:
                async with session.post(
                    delivery["url"],
                    data=delivery["body"],
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=10),
                ) as reply:
                    record.status = reply.status
                    await reply.read()
                    if 200 <= reply.status < 300:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                record.error = f"{type(error).__name__}: {error}"
            if wait is None:
                return  # given up, as Replicate gives up after its retries
            await asyncio.sleep(wait * self.retry_scale)

    async def close(self) -> None:
        """Stop every delivery in flight and close the connections."""
        for throttle in self._throttles.values():
            if throttle.timer is not None:
                throttle.timer.cancel()
        self._throttles.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None
