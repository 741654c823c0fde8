"""The rest of the API, one resource per area, against the emulator."""

from __future__ import annotations

import pytest

from replicate_async import AsyncReplicate
from replicate_async.errors import NotFoundError
from replicate_async.testing import Emulator


async def test_models(client: AsyncReplicate, emulator: Emulator) -> None:
    model = await client.models.get("emulator/images")
    assert model.ref == "emulator/images"
    assert model.latest_version is not None and model.latest_version.openapi_schema
    names = [m.ref async for m in client.models.list()]
    assert {
        "emulator/echo",
        "emulator/fail",
        "emulator/images",
        "emulator/sleep",
        "emulator/stream",
    } <= set(names)
    found = [m.ref async for m in client.models.search("fail")]
    assert found == ["emulator/fail"]
    versions = [v.id async for v in client.models.versions.list("emulator/echo")]
    assert versions == [model.latest_version.id] or len(versions) == 1
    version = await client.models.versions.get("emulator/echo", versions[0])
    assert version.id == versions[0]
    p = await client.models.predictions.create("emulator/echo", {"text": "hi"}, wait=True)
    assert p.output == "hi"
    with pytest.raises(NotFoundError):
        await client.models.get("emulator/nope")


async def test_deployments(client: AsyncReplicate, emulator: Emulator) -> None:
    emulator.add_deployment("acme/echo", "emulator/echo")
    d = await client.deployments.get("acme/echo")
    assert d.current_release is not None and d.current_release.model == "emulator/echo"
    assert [x.name async for x in client.deployments.list()] == ["echo"]
    p = await client.deployments.predictions.create("acme/echo", {"text": "dep"}, wait=True)
    assert p.output == "dep"


async def test_trainings(client: AsyncReplicate, emulator: Emulator) -> None:
    version = (await client.models.get("emulator/sleep")).latest_version
    assert version is not None
    t = await client.trainings.create(
        "emulator/sleep", version.id, destination="me/trained", input={"seconds": 10}
    )
    assert (await client.trainings.get(t.id)).id == t.id
    assert [x.id async for x in client.trainings.list()] == [t.id]
    assert (await client.trainings.cancel(t.id)).status == "canceled"


async def test_hardware_account_webhooks(client: AsyncReplicate, emulator: Emulator) -> None:
    hardware = await client.hardware.list()
    assert isinstance(hardware, list) and hardware[0].sku == "cpu"
    assert (await client.account.get()).username == "emulator"
    secret = await client.webhooks.default_secret()
    assert secret.key == emulator.webhook_secret and secret.key.startswith("whsec_")


async def test_search_is_counted_as_query(client: AsyncReplicate, emulator: Emulator) -> None:
    assert [m.ref async for m in client.models.search("echo")] == ["emulator/echo"]
    assert emulator.count("QUERY", "/models") == 1
