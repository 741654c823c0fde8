"""The client's lifecycle, its connection pool, and keeping the token secret."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from replicate_async import AsyncReplicate
from replicate_async import errors as e
from replicate_async.testing import Emulator


async def test_environment_configuration(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", emulator.token)
    monkeypatch.setenv("REPLICATE_BASE_URL", emulator.url)
    async with AsyncReplicate() as c:
        assert c.config.base_url == emulator.url
        assert await c.run("emulator/echo", input={"text": "env"}) == "env"
    monkeypatch.setenv("REPLICATE_BASE_URL", emulator.root_url)  # the official client's form
    async with AsyncReplicate() as c:
        assert c.config.base_url == emulator.url


async def test_user_session_is_used_but_not_closed(emulator: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with AsyncReplicate(
            api_token=emulator.token, base_url=emulator.url, session=session
        ) as c:
            assert await c.run("emulator/echo", input={"text": "s"}) == "s"
        assert not session.closed
    assert session.closed


async def test_aclose_is_idempotent_and_closes_the_pool(emulator: Emulator) -> None:
    c = AsyncReplicate(api_token=emulator.token, base_url=emulator.url)
    await c.run("emulator/echo", input={"text": "x"})
    session = c._session.transport._session
    assert session is not None
    await c.aclose()
    await c.aclose()
    assert session.closed and c.closed


async def test_connections_are_reused_and_released(emulator: Emulator) -> None:
    async with AsyncReplicate(
        api_token=emulator.token, base_url=emulator.url, max_connections=4
    ) as c:
        for i in range(10):
            await c.run("emulator/echo", input={"text": str(i)})
        in_use, idle = c._session.transport.connector_stats()
        assert in_use == 0 and 1 <= idle <= 4


async def test_breaking_out_of_a_download_releases_the_connection(client: AsyncReplicate) -> None:
    (image,) = await client.run(
        "emulator/images", input={"num_outputs": 1, "size_bytes": 5_000_000}
    )
    chunks = image.__aiter__()
    await chunks.__anext__()
    assert client._session.transport.connector_stats()[0] == 1
    await chunks.aclose()  # what `break` does once the iterator is dropped
    assert client._session.transport.connector_stats()[0] == 0


async def test_token_never_appears_anywhere(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = emulator.token
    seen: list[str] = []
    async with AsyncReplicate(api_token=secret, base_url=emulator.url) as c:
        seen += [repr(c), str(c.config), repr(c.config)]
        await c.run("emulator/images", input={"num_outputs": 1})
        emulator.fail_next("GET", "/account", status=500, times=10)
        failing = [
            lambda: c.run("emulator/fail"),
            lambda: c.account.get(),
            lambda: c.run("nobody/none"),
            lambda: c.run("emulator/echo", input={"text": 1}),
            lambda: c.run("emulator/echo", input={"text": "x"}),  # after fail_next below
        ]
        for i, call in enumerate(failing):
            if i == len(failing) - 1:
                emulator.fail_next("POST", "/models/{owner}/{name}/predictions", status=502)
            with pytest.raises(e.ReplicateError) as info:
                await call()
            chain: BaseException | None = info.value
            while chain is not None:
                seen += [str(chain), repr(chain), repr(vars(chain))]
                chain = chain.__cause__ or chain.__context__
    seen += [r.getMessage() for r in caplog.records]
    assert len(seen) > 15
    assert not [s for s in seen if secret in s]
    # and no request carried it to the file host
    assert all(secret not in str(h) for h in emulator.delivery_requests)
