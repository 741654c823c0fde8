"""Transport decisions, with aiohttp mocked by aioresponses: headers, retries, mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from replicate_async import AsyncReplicate, Prediction, RetryPolicy, Timeouts
from replicate_async import errors as e
from replicate_async.files import FileOutput
from replicate_async.streaming import StreamPolicy

BASE = "https://api.example.test/v1"
TOKEN = "r8_supersecret_token_value_0123456789"
PRED = {"id": "p1", "status": "starting", "urls": {"get": f"{BASE}/predictions/p1"}}
DONE = {"id": "p1", "status": "succeeded", "output": "ok"}


class FakeTime:
    """Sleeping advances the clock at once: retry and rate-limit waits cost no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_client(time: FakeTime, **kwargs: Any) -> AsyncReplicate:
    return AsyncReplicate(
        api_token=TOKEN, base_url=BASE, sleep=time.sleep, clock=time.clock, **kwargs
    )


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def sleeps(fake_time: FakeTime) -> list[float]:
    return fake_time.sleeps


@pytest.fixture
async def client(fake_time: FakeTime) -> AsyncIterator[AsyncReplicate]:
    async with fake_client(fake_time) as c:
        yield c


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return list(m.requests.get((method, URL(url)), []))


async def test_create_sends_auth_user_agent_prefer_and_cancel_after(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/models/a/b/predictions", status=201, payload=PRED)
        p = await client.predictions.create(model="a/b", input={"x": 1}, wait=10, cancel_after="5m")
        assert p.id == "p1"
        (call,) = calls(m, "POST", f"{BASE}/models/a/b/predictions")
        headers = call.kwargs["headers"]
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["User-Agent"].startswith("replicate-async/")
        assert headers["Prefer"] == "wait=10"
        assert headers["Cancel-After"] == "5m"
        assert headers["Content-Type"] == "application/json"
        assert call.kwargs["data"] == b'{"input":{"x":1}}'
        # the read timeout outlasts the server's wait
        assert call.kwargs["timeout"].sock_read >= 10 + 10


async def test_prefer_wait_without_seconds(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/predictions", status=201, payload=PRED)
        await client.predictions.create(version="a/b:v1", wait=True)
        (call,) = calls(m, "POST", f"{BASE}/predictions")
        assert call.kwargs["headers"]["Prefer"] == "wait"
        assert call.kwargs["timeout"].sock_read > 60


async def test_create_is_never_resent_after_a_5xx(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/predictions", status=503, body="busy", repeat=True)
        with pytest.raises(e.CreateOutcomeUnknownError, match="may exist") as info:
            await client.predictions.create(version="v1")
        assert info.value.status == 503
        assert isinstance(info.value.__cause__, e.ServerError)
        assert len(calls(m, "POST", f"{BASE}/predictions")) == 1


async def test_create_is_never_resent_after_the_connection_drops(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/predictions", exception=aiohttp.ServerDisconnectedError(), repeat=True)
        with pytest.raises(e.CreateOutcomeUnknownError, match="may exist") as info:
            await client.predictions.create(version="v1")
        assert len(calls(m, "POST", f"{BASE}/predictions")) == 1
        err = info.value
        assert err.sent_after is not None and err.sent_before >= err.sent_after


async def test_create_timeout_is_not_resent(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        m.post(f"{BASE}/predictions", exception=TimeoutError(), repeat=True)
        with pytest.raises(e.CreateOutcomeUnknownError):
            await client.predictions.create(version="v1")
        assert len(calls(m, "POST", f"{BASE}/predictions")) == 1


async def test_create_retried_when_never_sent(client: AsyncReplicate, sleeps: list[float]) -> None:
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("api.example.test", 443, True, None, None, None, None),
        ConnectionRefusedError(111, "Connection refused"),
    )
    with aioresponses() as m:
        m.post(f"{BASE}/predictions", exception=refused)
        m.post(f"{BASE}/predictions", status=201, payload=PRED)
        p = await client.predictions.create(version="v1")
        assert p.id == "p1"
        assert len(calls(m, "POST", f"{BASE}/predictions")) == 2
        assert sleeps  # a backoff (and maybe a wait for the rate limit) before the retry


async def test_create_retried_after_429_with_the_servers_delay(
    client: AsyncReplicate, sleeps: list[float]
) -> None:
    with aioresponses() as m:
        m.post(
            f"{BASE}/predictions",
            status=429,
            payload={
                "detail": "Request was throttled. Expected available in 2 seconds.",
                "status": 429,
            },
        )
        m.post(f"{BASE}/predictions", status=201, payload=PRED)
        await client.predictions.create(version="v1")
        assert len(calls(m, "POST", f"{BASE}/predictions")) == 2
        assert 2 <= sleeps[0] <= 2.5


async def test_429_after_all_attempts_raises_rate_limit_error(fake_time: FakeTime) -> None:
    async with fake_client(fake_time, retry=RetryPolicy(max_throttled=2)) as c:
        with aioresponses() as m:
            m.get(
                f"{BASE}/predictions/p1",
                status=429,
                headers={"Retry-After": "1"},
                payload={"detail": "throttled"},
                repeat=True,
            )
            with pytest.raises(e.RateLimitError) as info:
                await c.predictions.get("p1")
            assert info.value.retry_after == 1.0
            assert len(calls(m, "GET", f"{BASE}/predictions/p1")) == 2


async def test_get_retried_on_5xx_and_connection_loss(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        url = f"{BASE}/predictions/p1"
        m.get(url, status=502, body="<html><title>502 Bad Gateway</title></html>")
        m.get(url, exception=aiohttp.ServerDisconnectedError())
        m.get(url, status=200, payload=DONE)
        p = await client.predictions.get("p1")
        assert p.output == "ok"
        assert len(calls(m, "GET", url)) == 3


async def test_cancel_is_retried_like_a_read(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        url = f"{BASE}/predictions/p1/cancel"
        m.post(url, status=500)
        m.post(url, status=200, payload={**DONE, "status": "canceled"})
        assert (await client.predictions.cancel("p1")).status == "canceled"


async def test_4xx_is_not_retried(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        m.get(
            f"{BASE}/predictions/nope", status=404, payload={"detail": "Not found.", "status": 404}
        )
        with pytest.raises(e.NotFoundError):
            await client.predictions.get("nope")
        assert len(calls(m, "GET", f"{BASE}/predictions/nope")) == 1


async def test_malformed_json_in_a_200(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        m.get(f"{BASE}/predictions/p1", status=200, body="<html>hello</html>")
        with pytest.raises(e.MalformedResponseError, match="expected JSON"):
            await client.predictions.get("p1")
        m.get(f"{BASE}/predictions/p1", status=200, payload={"no": "id"})
        with pytest.raises(e.MalformedResponseError, match="Prediction"):
            await client.predictions.get("p1")


async def test_file_downloads_never_carry_the_token(client: AsyncReplicate) -> None:
    with aioresponses() as m:
        url = "https://replicate.delivery/pbxt/abc/out.png"
        m.get(url, status=200, body=b"png-bytes", headers={"Content-Length": "9"})
        output = client.output_of(Prediction(id="p1", status="succeeded", output=url))
        assert isinstance(output, FileOutput)
        assert await output.read() == b"png-bytes"
        (call,) = calls(m, "GET", url)
        assert "Authorization" not in call.kwargs["headers"]


async def test_request_refuses_other_origins(client: AsyncReplicate) -> None:
    with pytest.raises(ValueError, match="not on the API's origin"):
        await client.request("GET", "https://evil.example/v1/predictions")


async def test_token_never_in_errors_reprs_or_logs(
    client: AsyncReplicate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = [repr(client), str(client.config), repr(client.config)]
    with aioresponses() as m:
        m.post(f"{BASE}/predictions", exception=aiohttp.ServerDisconnectedError())
        m.get(
            f"{BASE}/predictions/p1",
            status=401,
            payload={"title": "Unauthenticated", "detail": "bad token", "status": 401},
        )
        for coro in (client.predictions.create(version="v1"), client.predictions.get("p1")):
            try:
                await coro
            except e.ReplicateError as exc:
                chain: BaseException | None = exc
                while chain is not None:
                    seen += [str(chain), repr(chain), repr(vars(chain))]
                    chain = chain.__cause__ or chain.__context__
    seen += [r.getMessage() for r in caplog.records]
    assert not [s for s in seen if TOKEN in s]


async def test_an_unknown_create_is_recovered_from_the_list(client: AsyncReplicate) -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc).isoformat()
    old = "2000-01-01T00:00:00Z"  # the server's created_after filter is not trusted
    listing = {
        "next": None,
        "previous": None,
        "results": [
            {"id": "other", "status": "starting", "input": {"x": 2}, "version": "v1"},
            {
                "id": "ancient",
                "status": "starting",
                "input": {"x": 1},
                "version": "v1",
                "created_at": old,
            },
            {
                "id": "mine",
                "status": "starting",
                "input": {"x": 1},
                "version": "v1",
                "created_at": now,
            },
            {
                "id": "wrong-version",
                "status": "starting",
                "input": {"x": 1},
                "version": "v2",
                "created_at": now,
            },
        ],
    }
    with aioresponses() as m:
        m.post(f"{BASE}/predictions", exception=aiohttp.ServerDisconnectedError())
        m.get(__import__("re").compile(rf"{BASE}/predictions\?.*"), payload=listing, repeat=True)
        p = await client.predictions.create(version="v1", input={"x": 1})
        assert p.id == "mine"
        assert len(calls(m, "POST", f"{BASE}/predictions")) == 1
        # a second identical unknown create does not adopt the one already claimed
        m.post(f"{BASE}/predictions", exception=aiohttp.ServerDisconnectedError())
        with pytest.raises(e.CreateOutcomeUnknownError, match="probably not created"):
            await client.predictions.create(version="v1", input={"x": 1})


async def test_a_shared_limiter_paces_two_clients_together(fake_time: FakeTime) -> None:
    from replicate_async import RateLimiter, RateLimits

    shared = RateLimiter(
        RateLimits(get_per_minute=60, burst=1), clock=fake_time.clock, sleep=fake_time.sleep
    )
    a = AsyncReplicate(api_token=TOKEN, base_url=BASE, limiter=shared, sleep=fake_time.sleep)
    b = AsyncReplicate(api_token=TOKEN, base_url=BASE, limiter=shared, sleep=fake_time.sleep)
    async with a, b:
        with aioresponses() as m:
            m.get(f"{BASE}/predictions/p1", payload=DONE, repeat=True)
            start = fake_time.now
            for _ in range(3):
                await a.predictions.get("p1")
                await b.predictions.get("p1")
            # six requests at one a second, whichever client sent them
            assert fake_time.now - start == pytest.approx(5.0)
    with pytest.raises(ValueError, match="not both"):
        AsyncReplicate(api_token=TOKEN, limiter=shared, rate_limits=RateLimits())


async def test_the_time_budget_ends_retries(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=100, time_budget=5.0, initial_backoff=0.01)
    async with fake_client(fake_time, retry=policy) as c:
        with aioresponses() as m:
            url = f"{BASE}/predictions/p1"
            m.get(url, status=503, headers={"Retry-After": "2"}, repeat=True)
            start = fake_time.now
            with pytest.raises(e.ServerError):
                await c.predictions.get("p1")
            # tries at 0, 2 and 4 s; a fourth would start past the 5 s budget
            assert len(calls(m, "GET", url)) == 3
            assert fake_time.now - start < 5.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1.0, True, "30"])
@pytest.mark.parametrize("field", ["connect", "read", "total", "progress"])
def test_a_timeout_that_would_never_end_or_never_wait_is_refused(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"Timeouts\.{field} must be a finite number"):
        Timeouts(**{field: value})


def test_total_may_be_none_and_stream_policy_checks_its_numbers_too() -> None:
    assert Timeouts(total=None).total is None
    with pytest.raises(ValueError, match=r"StreamPolicy\.idle_timeout"):
        StreamPolicy(idle_timeout=float("nan"))
    with pytest.raises(ValueError, match="max_event_size"):
        StreamPolicy(max_event_size=10)
    with pytest.raises(ValueError, match="max_reconnects"):
        StreamPolicy(max_reconnects=-1)
