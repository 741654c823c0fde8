"""Every bad input gets a clear error, no hang and no leaked connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from replicate_async import AsyncReplicate
from replicate_async import errors as e
from replicate_async.testing import Emulator


async def test_no_token_fails_before_any_request(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
    async with AsyncReplicate(base_url=emulator.url) as c:
        with pytest.raises(e.AuthenticationError, match="REPLICATE_API_TOKEN") as info:
            await c.run("emulator/echo", input={"text": "x"})
    assert info.value.status is None
    assert sum(emulator.requests.values()) == 0


async def test_bad_token_is_401(emulator: Emulator) -> None:
    async with AsyncReplicate(api_token="r8_wrong", base_url=emulator.url) as c:
        with pytest.raises(e.AuthenticationError) as info:
            await c.run("emulator/echo", input={"text": "x"})
    err = info.value
    assert err.status == 401 and err.title == "Unauthenticated"
    assert err.detail == "You did not pass a valid authentication token"
    assert err.method == "POST" and err.url is not None and err.url.startswith(emulator.url)
    assert "r8_wrong" not in str(err)


async def test_unknown_model_is_404(client: AsyncReplicate) -> None:
    with pytest.raises(e.NotFoundError, match="404"):
        await client.run("nobody/nothing", input={})
    with pytest.raises(e.NotFoundError):
        await client.predictions.get("doesnotexist")


async def test_unknown_version_is_422(client: AsyncReplicate) -> None:
    with pytest.raises(e.ValidationError, match="Invalid version"):
        await client.run("0" * 64, input={})


async def test_invalid_input_is_422_with_the_field(client: AsyncReplicate) -> None:
    with pytest.raises(e.ValidationError, match="text is required") as info:
        await client.run("emulator/echo", input={})
    assert info.value.body["invalid_fields"][0]["field"] == "input"
    with pytest.raises(e.ValidationError, match=r"input\.text"):
        await client.run("emulator/echo", input={"text": 5})


async def test_html_500_from_a_proxy(client: AsyncReplicate, emulator: Emulator) -> None:
    emulator.fail_next("GET", "/models/{owner}/{name}", status=500, times=10)
    with pytest.raises(e.ServerError, match="500 Internal Server Error") as info:
        await client.models.get("emulator/echo")
    assert "<" not in str(info.value)


async def test_a_5xx_on_a_get_is_retried(client: AsyncReplicate, emulator: Emulator) -> None:
    emulator.fail_next("GET", "/models/{owner}/{name}", status=503, times=2)
    model = await client.models.get("emulator/echo")
    assert model.name == "echo"
    assert emulator.count("GET", "/models/{owner}/{name}") == 3


async def test_malformed_json(client: AsyncReplicate, emulator: Emulator) -> None:
    emulator.fail_next(
        "GET", "/account", status=200, body='{"username": "x"', content_type="application/json"
    )
    with pytest.raises(e.MalformedResponseError, match="expected JSON"):
        await client.account.get()


async def test_a_garbled_poll_does_not_lose_a_running_prediction(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    # Every poll of the first few is garbled (or a busy 5xx past the request's retries):
    # the prediction is fine, so the wait goes on and gets its result.
    garbled = {"status": 200, "body": '{"id": ', "content_type": "application/json"}
    emulator.fail_next("GET", "/predictions/{id}", times=2, **garbled)  # type: ignore[arg-type]
    emulator.fail_next("GET", "/predictions/{id}", status=503, times=5)
    run = client.run("emulator/sleep", input={"seconds": 0.3}, wait=False)  # polled, not held
    assert await asyncio.wait_for(run, 20) is None
    assert emulator.count("GET", "/predictions/{id}") >= 8


async def test_polls_that_keep_failing_end_the_wait_with_the_error(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    garbled = {"status": 200, "body": '{"id": ', "content_type": "application/json"}
    emulator.fail_next("GET", "/predictions/{id}", times=100, **garbled)  # type: ignore[arg-type]
    with pytest.raises(e.MalformedResponseError, match="expected JSON"):
        await asyncio.wait_for(client.run("emulator/sleep", input={"seconds": 0.3}, wait=False), 20)
    # the first poll and three more, a backoff apart: bounded, and not one GET in a loop
    assert emulator.count("GET", "/predictions/{id}") == 4


async def test_server_closing_the_connection_on_a_get_is_retried(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.reset_next("GET", "/account")
    account = await client.account.get()
    assert account.username == "emulator"
    assert emulator.count("GET", "/account") == 2


async def test_a_create_whose_reply_was_lost_is_recovered_not_resent(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.reset_next("POST", "/models/{owner}/{name}/predictions")
    assert await client.run("emulator/echo", input={"text": "once"}) == "once"
    # the create happened server-side exactly once, was not re-sent, and its result is ours
    assert emulator.count("POST", "/models/{owner}/{name}/predictions") == 1
    assert len(emulator.predictions) == 1


async def test_a_lookup_that_fails_is_tried_again_so_nothing_that_ran_is_lost(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.reset_next("POST", "/models/{owner}/{name}/predictions")
    # The first look at the list gets a garbled page (a 200 that is not JSON, which a
    # GET's retries do not cover): the next look must still find what the create made.
    emulator.fail_next(
        "GET", "/predictions", status=200, body=b'{"id": ', content_type="application/json"
    )
    assert await client.run("emulator/echo", input={"text": "ran"}) == "ran"
    assert emulator.count("POST", "/models/{owner}/{name}/predictions") == 1
    assert emulator.count("GET", "/predictions") == 2
    assert len(emulator.predictions) == 1


async def test_a_garbled_page_of_a_look_is_asked_for_again(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.reset_next("POST", "/models/{owner}/{name}/predictions")
    # Three garbled pages in a row: as many as there are looks, so only asking again
    # for a page within a look finds what the create made.
    emulator.fail_next(
        "GET", "/predictions", status=200, body=b"<html>", content_type="text/html", times=3
    )
    assert await client.run("emulator/echo", input={"text": "ran"}) == "ran"
    assert emulator.count("POST", "/models/{owner}/{name}/predictions") == 1
    assert len(emulator.predictions) == 1


async def test_recovery_reaches_back_seconds_not_half_a_minute(
    client: AsyncReplicate, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime, timezone

    from replicate_async import _create

    asked: list[str] = []
    real = _create.list_pages

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["params"]["created_after"])
        return real(*args, **kwargs)

    monkeypatch.setattr(_create, "list_pages", spy)
    await client.account.get()  # any reply: its Date header bounds the server's clock
    sent = datetime.now(timezone.utc)
    emulator.reset_next("POST", "/models/{owner}/{name}/predictions")
    assert await client.run("emulator/echo", input={"text": "found"}) == "found"
    # The search starts a couple of seconds before the send (the Date's whole second,
    # the margin), not 30: at a bulk job's rate that is a few pages instead of hundreds.
    (since,) = {datetime.fromisoformat(value) for value in asked}
    assert 0 < (sent - since).total_seconds() < 4


async def test_a_create_that_got_a_5xx_is_never_resent(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.fail_next("POST", "/models/{owner}/{name}/predictions", status=503)
    with pytest.raises(e.CreateOutcomeUnknownError, match="probably not created") as info:
        await client.run("emulator/echo", input={"text": "x"})
    err = info.value
    assert err.status == 503
    assert isinstance(err.__cause__, e.ServerError)
    assert err.sent_after is not None and err.sent_before is not None
    assert emulator.count("POST", "/models/{owner}/{name}/predictions") == 1
    assert len(emulator.predictions) == 0


async def test_recovery_off_raises_at_once(emulator: Emulator) -> None:
    from replicate_async import RetryPolicy

    async with AsyncReplicate(
        api_token=emulator.token, base_url=emulator.url, retry=RetryPolicy(recover_creates=False)
    ) as c:
        emulator.reset_next("POST", "/models/{owner}/{name}/predictions")
        with pytest.raises(e.CreateOutcomeUnknownError, match="may exist"):
            await c.run("emulator/echo", input={"text": "once"})
    assert emulator.count("GET", "/predictions") == 0
    assert len(emulator.predictions) == 1


async def test_connection_refused_is_a_connect_error(unused_tcp_port: int) -> None:
    from replicate_async import RetryPolicy

    async with AsyncReplicate(
        api_token="r8_x",
        base_url=f"http://127.0.0.1:{unused_tcp_port}/v1",
        retry=RetryPolicy(max_attempts=2, initial_backoff=0.01),
    ) as c:
        with pytest.raises(e.ConnectError, match="could not connect"):
            await c.predictions.get("abc")


async def test_closed_client_and_wrong_loop() -> None:
    c = AsyncReplicate(api_token="r8_x", base_url="http://127.0.0.1:9/v1")
    await c.aclose()
    with pytest.raises(e.ClientClosedError, match="closed"):
        await c.predictions.get("abc")

    c2 = AsyncReplicate(api_token="r8_x", base_url="http://127.0.0.1:9/v1")
    async with c2:
        other_loop_error: list[BaseException] = []

        def in_other_loop() -> None:
            try:
                asyncio.run(c2.predictions.get("abc"))
            except BaseException as exc:
                other_loop_error.append(exc)

        await asyncio.to_thread(in_other_loop)
    assert isinstance(other_loop_error[0], e.ClientClosedError)
    assert "another event loop" in str(other_loop_error[0])


async def test_bad_configuration_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="base_url"):
        AsyncReplicate(api_token="x", base_url="api.replicate.com")
    with pytest.raises(ValueError, match="max_connections"):
        AsyncReplicate(api_token="x", max_connections=0)
    c = AsyncReplicate(api_token="x", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="cancel_after"):
        await c.predictions.create(model="a/b", cancel_after="soon")
    with pytest.raises(ValueError, match="between 5 seconds and 24 hours"):
        await c.predictions.create(model="a/b", cancel_after=2)
    with pytest.raises(ValueError, match="wait"):
        await c.predictions.create(model="a/b", wait=120)
    await c.aclose()
