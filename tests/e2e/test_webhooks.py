"""Webhooks end to end: emulator deliveries, the Receiver's checks, jobs with no polls.

The emulator signs, filters, throttles, retries and (asked to) faults deliveries; the
Receiver verifies, dedupes and orders them; jobs given one complete without polling.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from replicate_async import AsyncReplicate, PollPolicy, Prediction, RateLimits, Receiver
from replicate_async.testing import Emulator, RunContext
from replicate_async.webhooks import verify
from tests.conftest import FAST_POLLING

GET_ONE = ("GET", "/predictions/{id}")
LIST = ("GET", "/predictions")


class Sink:
    """A plain aiohttp server that records what it is sent and answers as told."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status)

    async def __aenter__(self) -> Sink:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with Sink() as s:
        yield s


async def chatty(input: dict[str, Any], ctx: RunContext) -> list[str]:
    for n in range(int(input["n"])):
        ctx.emit(f"tok{n}")
        ctx.log(f"line {n}")
        await ctx.sleep(float(input.get("every", 0.05)))
    return [f"tok{n}" for n in range(int(input["n"]))]


async def settle(emulator: Emulator, count: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while len(emulator.webhook_deliveries) < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)  # deliveries are the emulator's tasks: nothing to await
    await asyncio.sleep(0.05)


async def echo_completed(client: AsyncReplicate, sink: Sink) -> Prediction:
    """Run emulator/echo with a webhook for its completion to ``sink``; its end."""
    prediction = await client.models.predictions.create(
        "emulator/echo",
        input={"text": "x"},
        webhook=sink.url,
        webhook_events_filter=["completed"],
    )
    return await client.predictions.wait(prediction)


# -- what the emulator sends ----------------------------------------------------------------


async def test_deliveries_are_signed_as_replicate_signs_them(
    client: AsyncReplicate, emulator: Emulator, sink: Sink
) -> None:
    secret = (await client.webhooks.default_secret()).key
    prediction = await client.models.predictions.create(
        "emulator/echo", input={"text": "hi"}, webhook=sink.url
    )
    await client.predictions.wait(prediction)
    await settle(emulator, 2)
    events = [d.event for d in emulator.webhook_deliveries]
    assert events == ["start", "logs", "completed"]  # no filter given: all four kinds
    for headers, body in sink.got:
        verify(headers, body, secret)  # our verifier agrees...
        # ...and so does the Standard Webhooks rule written out by hand.
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert headers["webhook-signature"] == f"v1,{expected}"
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 10
    last = json.loads(sink.got[-1][1])
    assert last["id"] == prediction.id and last["status"] == "succeeded"
    assert last["output"] == "hi" and last["webhook"] == sink.url
    assert len({h["webhook-id"] for h, _ in sink.got}) == 3


async def test_only_the_filtered_events_come_and_output_is_throttled(
    client: AsyncReplicate, emulator: Emulator, sink: Sink
) -> None:
    emulator.add_model("me/chatty", chatty)
    prediction = await client.models.predictions.create(
        "me/chatty",
        input={"n": 30, "every": 0.05},
        webhook=sink.url,
        webhook_events_filter=["output", "completed"],
    )
    await client.predictions.wait(prediction)
    await settle(emulator, 3)
    kinds = [d.event for d in emulator.webhook_deliveries]
    assert set(kinds) == {"output", "completed"} and kinds[-1] == "completed"
    outputs = [d for d in emulator.webhook_deliveries if d.event == "output"]
    # 30 outputs over 1.5 s, at most one delivery each 500 ms: 3 or 4, not 30.
    assert 2 <= len(outputs) <= 5
    gaps = [b.at - a.at for a, b in itertools.pairwise(outputs)]
    assert all(gap >= 0.45 for gap in gaps), gaps
    # Each carries the output so far, growing.
    sizes = [len(d.payload["output"]) for d in outputs]
    assert sizes == sorted(sizes) and sizes[0] < 30
    assert emulator.webhook_deliveries[-1].payload["output"] == [f"tok{n}" for n in range(30)]


async def test_a_failed_delivery_is_retried_with_backoff(emulator: Emulator, sink: Sink) -> None:
    emulator._webhooks.retry_scale = 0.05  # 25, 50, 100 ms ...
    sink.answers = [500, 503]
    async with AsyncReplicate(emulator.token, emulator.url, polling=FAST_POLLING) as client:
        await echo_completed(client, sink)
    await settle(emulator, 3)
    attempts = [(d.attempt, d.status) for d in emulator.webhook_deliveries]
    assert attempts == [(1, 500), (2, 503), (3, 200)]
    ids = {d.webhook_id for d in emulator.webhook_deliveries}
    assert len(ids) == 1  # a retry is the same message


async def test_trainings_get_webhooks_too(
    client: AsyncReplicate, emulator: Emulator, sink: Sink
) -> None:
    version = await client.models.versions.list("emulator/echo").__anext__()
    training = await client.trainings.create(
        "emulator/echo",
        version.id,
        input={"text": "t"},
        destination="emulator/trained",
        webhook=sink.url,
        webhook_events_filter=["completed"],
    )
    await client.trainings.wait(training)
    await settle(emulator, 1)
    assert [d.event for d in emulator.webhook_deliveries] == ["completed"]
    assert emulator.webhook_deliveries[0].payload["id"] == training.id


# -- the receiver -------------------------------------------------------------------------


def signed(
    secret: str, body: bytes, *, webhook_id: str = "msg_1", at: float | None = None
) -> dict[str, str]:
    from replicate_async.testing._webhooks import sign

    stamp = int(time.time() if at is None else at)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, webhook_id, stamp, body),
        "Content-Type": "application/json",
    }


async def test_the_receiver_refuses_tampered_and_stale_deliveries_and_drops_repeats(
    emulator: Emulator,
) -> None:
    secret = emulator.webhook_secret
    async with Receiver(secret=secret) as receiver, aiohttp.ClientSession() as http:

        async def post(body: bytes, headers: dict[str, str]) -> int:
            async with http.post(receiver.url, data=body, headers=headers) as reply:
                return reply.status

        processing = json.dumps({"id": "p1", "status": "processing", "logs": "a"}).encode()
        done = json.dumps({"id": "p1", "status": "succeeded", "output": 1}).encode()
        # Tampered: signed for one body, sent with another.
        assert await post(done, signed(secret, processing, webhook_id="m0")) == 401
        # Stale: signed properly, ten minutes ago.
        assert await post(done, signed(secret, done, webhook_id="m1", at=time.time() - 600)) == 401
        # Signed with another account's key.
        other = "whsec_" + base64.b64encode(b"k" * 24).decode()
        assert await post(done, signed(other, done, webhook_id="m2")) == 401
        assert receiver.latest("p1") is None
        # Out of order: the end first, then a late "processing": the end stands.
        assert await post(done, signed(secret, done, webhook_id="m3")) == 200
        assert await post(processing, signed(secret, processing, webhook_id="m4")) == 200
        latest = receiver.latest("p1")
        assert latest is not None and latest.status == "succeeded"
        # A repeat of a message is acknowledged (so it is not retried) and dropped.
        assert await post(done, signed(secret, done, webhook_id="m3")) == 200
        # Not a prediction at all, though signed.
        assert await post(b"[1, 2]", signed(secret, b"[1, 2]", webhook_id="m5")) == 400
        assert receiver.stats.rejected == 3 and receiver.stats.repeated == 1
        assert receiver.stats.accepted == 2 and receiver.stats.unreadable == 1


async def test_a_receiver_without_its_secret_yet_asks_to_be_called_again() -> None:
    async with (
        Receiver() as receiver,
        aiohttp.ClientSession() as http,
        http.post(receiver.url, data=b"{}") as reply,
    ):
        assert reply.status == 503
    assert receiver.stats.unready == 1


async def test_bad_receiver_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="path must start"):
        Receiver(path="hook")
    with pytest.raises(ValueError, match="public_url"):
        Receiver("ftp://example.com/hook")
    with pytest.raises(ValueError, match="grace"):
        Receiver(grace=0)
    with pytest.raises(RuntimeError, match="not listening"):
        _ = Receiver().url
    # Behind a proxy: the public URL is what creates carry, whatever it binds.
    assert Receiver("https://hooks.example.com/r").url == "https://hooks.example.com/r"


# -- jobs that complete by webhook ----------------------------------------------------------


async def slow(input: dict[str, Any], ctx: RunContext) -> int:
    await ctx.sleep(float(input.get("seconds", 0.3)))
    return int(input["i"])


async def test_a_thousand_predictions_complete_with_zero_polls(emulator: Emulator) -> None:
    emulator.add_model("me/slow", slow)
    async with (
        Receiver() as receiver,
        AsyncReplicate(
            emulator.token, emulator.url, polling=FAST_POLLING, rate_limits=RateLimits.unlimited()
        ) as client,
    ):
        url = receiver.url
        inputs = [{"i": i, "seconds": 0.2} for i in range(1000)]
        results = [
            r async for r in client.run_many("me/slow", inputs, concurrency=200, webhook=receiver)
        ]
    assert sorted(r.output for r in results) == list(range(1000))
    assert emulator.count(*GET_ONE) == 0 and emulator.count(*LIST) == 0
    assert receiver.stats.accepted == 1000
    creates = [job for job in emulator.predictions.values()]
    assert all(job.webhook == url for job in creates)
    assert all(job.webhook_events_filter == ["completed"] for job in creates)


async def test_with_a_tenth_of_deliveries_lost_the_job_completes_polling_only_those(
    emulator: Emulator,
) -> None:
    emulator.add_model("me/slow", slow)
    emulator.webhook_faults(drop=0.1, seed=7)
    # Sweeps off, so that each poll names the prediction it asks about.
    polling = PollPolicy(first=0.02, factor=1.5, cap=0.1, sweep_at=10_000)
    async with (
        Receiver(grace=0.5) as receiver,
        AsyncReplicate(emulator.token, emulator.url, polling=polling) as client,
    ):
        inputs = [{"i": i, "seconds": 0.1} for i in range(200)]
        results = [
            r async for r in client.run_many("me/slow", inputs, concurrency=100, webhook=receiver)
        ]
    assert sorted(r.output for r in results) == list(range(200))
    lost = {d.prediction_id for d in emulator.webhook_deliveries if d.error}
    assert 5 <= len(lost) <= 40
    polled = {
        path.rsplit("/", 1)[-1] for path in emulator.request_paths("GET", "/predictions/{id}")
    }
    assert polled == lost


async def test_repeated_and_reordered_deliveries_end_each_wait_once(emulator: Emulator) -> None:
    emulator.add_model("me/chatty", chatty)
    emulator.webhook_faults(repeat=0.5, reorder=0.5, seed=3)
    async with (
        Receiver() as receiver,
        AsyncReplicate(emulator.token, emulator.url, polling=FAST_POLLING) as client,
    ):
        inputs = [{"n": 6, "every": 0.1, "i": i} for i in range(20)]
        results = [
            r
            async for r in client.run_many(
                "me/chatty",
                inputs,
                webhook=receiver,
                webhook_events_filter=["start", "output", "completed"],
            )
        ]
    assert len(results) == 20 and all(r.ok for r in results)
    assert all(r.output == [f"tok{n}" for n in range(6)] for r in results)
    assert receiver.stats.repeated > 0
    assert emulator.count(*GET_ONE) == 0


async def test_run_and_wait_take_a_receiver(emulator: Emulator) -> None:
    emulator.add_model("me/slow", slow)
    async with (
        Receiver() as receiver,
        AsyncReplicate(emulator.token, emulator.url, polling=FAST_POLLING) as client,
    ):
        assert await client.run("me/slow", {"i": 4}, webhook=receiver) == 4
        prediction = await client.models.predictions.create(
            "me/slow", input={"i": 5}, webhook=receiver.url, webhook_events_filter=["completed"]
        )
        done = await client.predictions.wait(prediction, webhook=receiver)
        assert done.output == 5
        with pytest.raises(ValueError, match="add 'completed'"):
            await client.run("me/slow", {"i": 1}, webhook=receiver, webhook_events_filter=["start"])
    assert emulator.count(*GET_ONE) == 0


async def test_a_receiver_mounted_in_an_app_behind_a_proxy(emulator: Emulator) -> None:
    """The app is the user's; the public URL is the proxy's, here a second port forwarding."""
    emulator.add_model("me/slow", slow)
    receiver = Receiver("http://placeholder/hook", grace=30)
    app = web.Application()
    app.router.add_post("/inner/hook", receiver.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    inner = f"http://127.0.0.1:{runner.addresses[0][1]}/inner/hook"

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        async with (
            aiohttp.ClientSession() as http,
            http.post(inner, data=body, headers=request.headers) as reply,
        ):
            return web.Response(status=reply.status, body=await reply.read())

    proxy = web.Application()
    proxy.router.add_post("/hook", forward)
    proxy_runner = web.AppRunner(proxy)
    await proxy_runner.setup()
    await web.TCPSite(proxy_runner, "127.0.0.1", 0).start()
    receiver._public_url = f"http://127.0.0.1:{proxy_runner.addresses[0][1]}/hook"
    try:
        async with AsyncReplicate(emulator.token, emulator.url, polling=FAST_POLLING) as client:
            outputs = [
                r.output
                async for r in client.run_many(
                    "me/slow", [{"i": i} for i in range(5)], webhook=receiver
                )
            ]
        assert sorted(outputs) == list(range(5))
        assert emulator.count(*GET_ONE) == 0
    finally:
        await proxy_runner.cleanup()
        await runner.cleanup()


async def test_the_example_job_completes_by_webhook_and_resumes_without_repeats(
    tmp_path: Path,
) -> None:
    from examples.webhook_job import main, parse

    out = tmp_path / "results.jsonl"
    args = parse(["--count", "30", "--out", str(out), "--token", "", "--grace", "5"])
    assert await main(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(30))
    assert all(line["output"] == f"item {line['index']}" for line in lines)
    # Run again: the journal says all of it was taken, so nothing is written twice.
    assert await main(args) == 0
    assert len(out.read_text().splitlines()) == 30


async def test_other_languages_see_deliveries_and_set_faults_over_http(
    client: AsyncReplicate, emulator: Emulator, sink: Sink
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{emulator.root_url}/_emulator/webhook-faults", json={"drop": 1.0, "seed": 1}
        ) as reply:
            assert reply.status == 200
        async with http.post(
            f"{emulator.root_url}/_emulator/webhook-faults", json={"drop": 2}
        ) as reply:
            assert reply.status == 400
            assert "drop must be a share from 0 to 1" in (await reply.json())["detail"]
        prediction = await echo_completed(client, sink)
        await settle(emulator, 1)
        async with http.get(f"{emulator.root_url}/_emulator/webhooks") as reply:
            deliveries = await reply.json()
    assert sink.got == []  # dropped, as asked
    assert [(d["event"], d["status"], d["error"]) for d in deliveries] == [
        ("completed", None, "dropped by webhook_faults")
    ]
    assert deliveries[0]["body"]["id"] == prediction.id
