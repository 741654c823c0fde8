"""client.predictions end to end: create by every target, get, cancel, list, wait, watch."""

from __future__ import annotations

import asyncio

import pytest

from replicate_async import AsyncReplicate, Prediction, Status
from replicate_async.errors import WaitTimeoutError
from replicate_async.testing import Emulator
from tests.conftest import FAST_POLLING


async def test_create_by_model_version_and_deployment(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.add_deployment("acme/echo-prod", "emulator/echo")
    version = (await client.models.get("emulator/echo")).latest_version
    assert version is not None
    by_model = await client.predictions.create(model="emulator/echo", input={"text": "m"})
    by_version = await client.predictions.create(version=version.id, input={"text": "v"})
    by_ref = await client.predictions.create(
        version=f"emulator/echo:{version.id}", input={"text": "r"}
    )
    by_deployment = await client.predictions.create(
        deployment="acme/echo-prod", input={"text": "d"}
    )
    for p in (by_model, by_version, by_ref, by_deployment):
        assert p.status in Status.KNOWN
        assert p.urls is not None and p.urls.get == f"{emulator.url}/predictions/{p.id}"
        assert p.created_at is not None and p.created_at.tzinfo is not None
    assert by_deployment.deployment == "acme/echo-prod"
    assert emulator.count("POST", "/models/{owner}/{name}/predictions") == 1
    assert emulator.count("POST", "/predictions") == 2
    assert emulator.count("POST", "/deployments/{owner}/{name}/predictions") == 1
    outputs = {
        (await client.predictions.wait(p)).output
        for p in (by_model, by_version, by_ref, by_deployment)
    }
    assert outputs == {"m", "v", "r", "d"}


async def test_create_needs_exactly_one_target(client: AsyncReplicate, emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await client.predictions.create(input={})
    with pytest.raises(ValueError, match="exactly one"):
        await client.predictions.create(model="a/b", version="x", input={})
    assert sum(emulator.requests.values()) == 0


async def test_create_defaults_to_async_mode(client: AsyncReplicate) -> None:
    p = await client.predictions.create(model="emulator/sleep", input={"seconds": 0.5})
    assert p.status == "starting"  # returned at once, no Prefer: wait
    done = await client.predictions.wait(p.id)
    assert done.status == "succeeded" and done.completed_at is not None
    assert done.predict_time is not None and done.predict_time >= 0.5


async def test_create_with_wait_returns_finished(client: AsyncReplicate) -> None:
    p = await client.predictions.create(model="emulator/echo", input={"text": "x"}, wait=True)
    assert p.status == "succeeded" and p.output == "x"


async def test_webhook_fields_are_sent(client: AsyncReplicate) -> None:
    p = await client.predictions.create(
        model="emulator/echo",
        input={"text": "x"},
        webhook="https://example.test/hook",
        webhook_events_filter=["completed"],
    )
    assert p.webhook == "https://example.test/hook"
    assert p.webhook_events_filter == ["completed"]


async def test_get_and_cancel(client: AsyncReplicate, emulator: Emulator) -> None:
    p = await client.predictions.create(model="emulator/sleep", input={"seconds": 30})
    got = await client.predictions.get(p.id)
    assert got.id == p.id and got.input == {"seconds": 30}
    canceled = await client.predictions.cancel(p)
    assert canceled.status == "canceled"
    assert (await client.predictions.get(p.id)).status == "canceled"


async def test_wait_timeout_leaves_it_running(client: AsyncReplicate) -> None:
    p = await client.predictions.create(model="emulator/sleep", input={"seconds": 30})
    with pytest.raises(WaitTimeoutError, match="keeps running") as info:
        await client.predictions.wait(p, timeout=0.3)
    assert isinstance(info.value, TimeoutError)
    assert (await client.predictions.get(p.id)).status == "processing"
    await client.predictions.cancel(p.id)


async def test_watch_yields_each_new_state_and_ends_at_terminal(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    p = await client.predictions.create(model="emulator/stream", input={"tokens": 5, "delay": 0.1})
    snapshots: list[Prediction] = []
    async with client.predictions.watch(p.id) as watch:
        async for snapshot in watch:
            snapshots.append(snapshot)
    statuses = [s.status for s in snapshots]
    assert statuses[0] in ("starting", "processing") and statuses[-1] == "succeeded"
    assert len({(s.status, str(s.output), s.logs) for s in snapshots}) == len(snapshots)
    # partial output grew while processing
    assert any(s.status == "processing" and s.output for s in snapshots)


async def test_watch_break_stops_polling(client: AsyncReplicate, emulator: Emulator) -> None:
    p = await client.predictions.create(model="emulator/sleep", input={"seconds": 5})
    async for _ in client.predictions.watch(p):
        break
    before = emulator.count("GET", "/predictions/{id}")
    await asyncio.sleep(0.3)
    assert emulator.count("GET", "/predictions/{id}") == before
    await client.predictions.cancel(p)


async def test_polling_cost_is_bounded(client: AsyncReplicate, emulator: Emulator) -> None:
    """A 3 s prediction with polls backing off from 20 ms to a 100 ms cap: about 30, not 150."""
    await client.run("emulator/sleep", input={"seconds": 3}, wait=False)
    polls = emulator.count("GET", "/predictions/{id}")
    assert 10 <= polls <= 40


async def test_default_polling_backs_off(emulator: Emulator) -> None:
    async with AsyncReplicate(api_token=emulator.token, base_url=emulator.url) as c:
        await c.run("emulator/sleep", input={"seconds": 4}, wait=False)
    # 0.25, 0.375, 0.56, 0.84, 1.27, 1.9 ... : 6-7 polls, where a 0.5 s hammer makes 8+
    assert emulator.count("GET", "/predictions/{id}") <= 7


async def test_list_follows_pages_without_duplicates() -> None:
    async with (
        Emulator(page_size=3) as emu,
        AsyncReplicate(api_token=emu.token, base_url=emu.url, polling=FAST_POLLING) as c,
    ):
        created = [
            (await c.predictions.create(model="emulator/echo", input={"text": str(i)})).id
            for i in range(8)
        ]
        listed = [p.id async for p in c.predictions.list()]
        assert listed == list(reversed(created))  # newest first, each once
        assert emu.count("GET", "/predictions") == 3  # 3 + 3 + 2
        pages = [page async for page in c.predictions.list().pages()]
        assert [len(page.results) for page in pages] == [3, 3, 2]
        assert pages[0].next is not None and pages[0].next.startswith(emu.url)
        assert pages[-1].next is None


async def test_list_is_lazy(client: AsyncReplicate, emulator: Emulator) -> None:
    pager = client.predictions.list()
    await asyncio.sleep(0.05)
    assert emulator.count("GET", "/predictions") == 0
    assert [p async for p in pager] == []
    assert emulator.count("GET", "/predictions") == 1


async def test_unknown_status_surfaces(client: AsyncReplicate, emulator: Emulator) -> None:
    from replicate_async.errors import UnknownStatusError

    p = await client.predictions.create(model="emulator/sleep", input={"seconds": 30})
    emulator.predictions[p.id].status = "hibernating"  # a status the server might add one day
    with pytest.raises(UnknownStatusError, match="hibernating"):
        await client.predictions.wait(p, timeout=5)


async def test_list_filters_by_creation_time(client: AsyncReplicate) -> None:
    from datetime import timedelta

    first = await client.predictions.create(model="emulator/echo", input={"text": "1"})
    second = await client.predictions.create(model="emulator/echo", input={"text": "2"})
    assert first.created_at is not None and second.created_at is not None
    middle = first.created_at + (second.created_at - first.created_at) / 2
    after = [p.id async for p in client.predictions.list(created_after=middle)]
    before = [p.id async for p in client.predictions.list(created_before=middle)]
    assert (after, before) == ([second.id], [first.id])
    # whole seconds with a Z, as people write them by hand
    hand = (first.created_at - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len([p async for p in client.predictions.list(created_after=hand)]) == 2
    from replicate_async.errors import BadRequestError

    with pytest.raises(BadRequestError, match="RFC 3339"):
        [p async for p in client.predictions.list(created_after="yesterday")]
