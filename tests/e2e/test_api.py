"""Every operation of Replicate's OpenAPI schema: a client method, against the emulator.

Each test drives one area through ``AsyncReplicate`` over real sockets and checks what
the emulator answers (status codes, shapes, errors), so a row of the README's API table
is covered on both sides. ``test_every_operation_has_a_test`` keeps the table honest:
an operation added to the schema without a test here fails the suite.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest

from replicate_async import AsyncReplicate
from replicate_async.errors import (
    NotFoundError,
    ReplicateError,
    ValidationError,
)
from replicate_async.testing import ConcatenateIterator, Emulator, Input
from replicate_async.types import Training

from ..conftest import FIXTURES

README = Path(__file__).parents[2] / "README.md"

#: operationId -> the test(s) below that cover it
COVERED = {
    "account.get": "test_account_hardware_and_webhook_secret",
    "hardware.list": "test_account_hardware_and_webhook_secret",
    "webhooks.default.secret.get": "test_account_hardware_and_webhook_secret",
    "collections.list": "test_collections",
    "collections.get": "test_collections",
    "deployments.list": "test_deployments_create_update_delete",
    "deployments.create": "test_deployments_create_update_delete",
    "deployments.get": "test_deployments_create_update_delete",
    "deployments.update": "test_deployments_create_update_delete",
    "deployments.delete": "test_deployments_create_update_delete",
    "deployments.predictions.create": "test_deployments_create_update_delete",
    "files.create": "test_files_and_signed_downloads",
    "files.list": "test_files_and_signed_downloads",
    "files.get": "test_files_and_signed_downloads",
    "files.delete": "test_files_and_signed_downloads",
    "files.download": "test_files_and_signed_downloads",
    "models.create": "test_models_create_update_delete",
    "models.update": "test_models_create_update_delete",
    "models.delete": "test_models_create_update_delete",
    "models.get": "test_models_get_list_sorted",
    "models.list": "test_models_get_list_sorted",
    "models.search": "test_search_both_ways",
    "search": "test_search_both_ways",
    "models.examples.list": "test_model_examples_and_readme",
    "models.readme.get": "test_model_examples_and_readme",
    "models.versions.list": "test_versions_list_get_delete",
    "models.versions.get": "test_versions_list_get_delete",
    "models.versions.delete": "test_versions_list_get_delete",
    "models.predictions.create": "test_predictions_by_model_version_and_list_filters",
    "predictions.create": "test_predictions_by_model_version_and_list_filters",
    "predictions.get": "test_predictions_by_model_version_and_list_filters",
    "predictions.list": "test_predictions_by_model_version_and_list_filters",
    "predictions.cancel": "test_predictions_by_model_version_and_list_filters",
    "trainings.create": "test_trainings_wait_and_watch_like_predictions",
    "trainings.get": "test_trainings_wait_and_watch_like_predictions",
    "trainings.list": "test_trainings_wait_and_watch_like_predictions",
    "trainings.cancel": "test_trainings_wait_and_watch_like_predictions",
}


def _operations() -> list[str]:
    schema = json.loads((FIXTURES / "replicate-openapi.json").read_text())
    return [
        op["operationId"]
        for path in schema["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    ]


def test_every_operation_has_a_test_and_a_readme_row() -> None:
    operations = _operations()
    assert len(operations) == 37
    assert set(operations) == set(COVERED)
    for name in set(COVERED.values()):
        assert name in globals(), name
    # The README's API table names each operation in its last column.
    table = README.read_text()
    missing = [op for op in operations if f"`{op}`" not in table]
    assert not missing, f"README API table lacks {missing}"


# -- account, hardware, webhooks, collections -------------------------------------------------


async def test_account_hardware_and_webhook_secret(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    account = await client.account.get()
    assert (account.username, account.type) == ("emulator", "user")
    assert account.github_url == "https://github.com/emulator"  # a string, as the schema says
    hardware = await client.hardware.list()
    assert [h.sku for h in hardware] == ["cpu", "gpu-t4", "gpu-a40-small", "gpu-a40-large"]
    secret = await client.webhooks.default_secret()
    assert secret.key == emulator.webhook_secret
    assert secret.key.startswith("whsec_")


async def test_collections(client: AsyncReplicate, emulator: Emulator) -> None:
    emulator.add_collection("text", "Text models", ["emulator/echo", "emulator/stream"])
    slugs = [c.slug async for c in client.collections.list()]
    assert slugs == ["emulator", "text"]
    text = await client.collections.get("text")
    assert text.name == "Text models"
    assert [m.ref for m in text.models or []] == ["emulator/echo", "emulator/stream"]
    with pytest.raises(NotFoundError):
        await client.collections.get("nope")


# -- models ------------------------------------------------------------------------------------


async def test_models_get_list_sorted(client: AsyncReplicate, emulator: Emulator) -> None:
    model = await client.models.get("emulator/images")
    assert model.ref == "emulator/images"
    assert model.latest_version is not None
    output = model.latest_version.openapi_schema["components"]["schemas"]["Output"]  # type: ignore[index]
    assert output == {
        "type": "array",
        "items": {"type": "string", "format": "uri"},
        "title": "Output",
    }
    emulator.add_model("me/newest", lambda i, c: None)
    newest_first = [m.ref async for m in client.models.list()]
    assert newest_first[0] == "me/newest"
    oldest_first = [m.ref async for m in client.models.list(sort_direction="asc")]
    assert oldest_first == list(reversed(newest_first))
    by_creation = [m.ref async for m in client.models.list(sort_by="model_created_at")]
    assert set(by_creation) == set(newest_first)
    with pytest.raises(ValueError, match="sort_by must be one of"):
        client.models.list(sort_by="popularity")
    with pytest.raises(NotFoundError):
        await client.models.get("emulator/nope")


async def test_models_create_update_delete(client: AsyncReplicate, emulator: Emulator) -> None:
    created = await client.models.create(
        "emulator/hot-dog", visibility="private", hardware="cpu", description="Detects dogs"
    )
    assert (created.ref, created.visibility, created.latest_version) == (
        "emulator/hot-dog",
        "private",
        None,
    )
    assert created.description == "Detects dogs"
    # The same name again: 409, as Replicate answers it.
    with pytest.raises(ReplicateError) as conflict:
        await client.models.create("emulator/hot-dog", visibility="private", hardware="cpu")
    assert conflict.value.status == 409
    assert conflict.value.detail == "A model with that name and owner already exists."
    with pytest.raises(ValueError, match="Invalid model"):  # refused before it is sent
        await client.models.create("emulator/-dog", visibility="private", hardware="cpu")
    # The emulator's own models are not the token's to change, as another's on Replicate.
    with pytest.raises(ReplicateError) as builtin:
        echo = (await client.models.get("emulator/echo")).latest_version
        assert echo is not None
        await client.models.versions.delete("emulator/echo", echo.id)
    assert builtin.value.status == 403
    # Only the token's own account may own a new model.
    with pytest.raises(ReplicateError) as foreign:
        await client.models.create("someone-else/x", visibility="public", hardware="cpu")
    assert foreign.value.status == 403
    with pytest.raises(ValueError, match="visibility"):
        await client.models.create("emulator/y", visibility="secret", hardware="cpu")
    updated = await client.models.update("emulator/hot-dog", readme="# Hot dog\n", paper_url="")
    assert updated.paper_url == ""
    assert await client.models.readme("emulator/hot-dog") == "# Hot dog\n"
    with pytest.raises(ValueError, match="at least one"):
        await client.models.update("emulator/hot-dog")
    # A public model, or one with versions, cannot be deleted (the real rules).
    with pytest.raises(ReplicateError, match="Only private models") as public:
        await client.models.create("emulator/shown", visibility="public", hardware="cpu")
        await client.models.delete("emulator/shown")
    assert public.value.status == 400
    await client.models.delete("emulator/hot-dog")
    with pytest.raises(NotFoundError):
        await client.models.get("emulator/hot-dog")


async def test_versions_list_get_delete(client: AsyncReplicate, emulator: Emulator) -> None:
    def first(i: dict[str, object], c: object) -> str:
        return "one"

    def second(i: dict[str, object], c: object) -> str:
        return "two"

    emulator.add_model("emulator/multi", first, output=str, visibility="private", version="a" * 64)
    emulator.add_model("emulator/multi", second, output=str, visibility="private", version="b" * 64)
    versions = [v.id async for v in client.models.versions.list("emulator/multi")]
    assert versions == ["b" * 64, "a" * 64]  # newest first
    assert (await client.models.versions.get("emulator/multi", "a" * 64)).id == "a" * 64
    # The model runs its newest version; a pinned one runs that one.
    assert await client.run("emulator/multi") == "two"
    assert await client.run(f"emulator/multi:{'a' * 64}") == "one"
    await client.models.versions.delete("emulator/multi", "b" * 64)  # 202
    assert [v.id async for v in client.models.versions.list("emulator/multi")] == ["a" * 64]
    assert await client.run("emulator/multi") == "one"
    with pytest.raises(NotFoundError):
        await client.models.versions.get("emulator/multi", "b" * 64)
    with pytest.raises(ReplicateError, match="with versions"):
        await client.models.delete("emulator/multi")


async def test_model_examples_and_readme(client: AsyncReplicate, emulator: Emulator) -> None:
    p = await client.models.predictions.create("emulator/echo", {"text": "ex"}, wait=True)
    emulator.add_example("emulator/echo", p.id)
    examples = [e.id async for e in client.models.examples("emulator/echo")]
    assert examples == [p.id]
    model = await client.models.get("emulator/echo")
    assert model.default_example is not None
    assert model.default_example.id == p.id
    assert (await client.models.readme("emulator/echo")).startswith("# emulator/echo")
    emulator.add_model("me/bare", lambda i, c: None)
    with pytest.raises(NotFoundError):
        await client.models.readme("me/bare")


async def test_search_both_ways(client: AsyncReplicate, emulator: Emulator) -> None:
    results = await client.search("images", limit=5)
    assert results.query == "images"
    assert [m.model.ref for m in results.models] == ["emulator/images"]
    assert results.models[0].metadata is not None
    assert results.models[0].metadata.score is not None
    assert [c.slug for c in results.collections] == ["emulator"]
    assert "emulator/images" in (results.collections[0].models or [])
    assert results.pages == []
    assert [m.ref async for m in client.models.search("fail")] == ["emulator/fail"]
    with pytest.raises(ValueError, match="limit"):
        await client.search("x", limit=51)
    with pytest.raises(ValueError, match="non-empty"):
        await client.search("  ")


# -- predictions ---------------------------------------------------------------------------


async def test_predictions_by_model_version_and_list_filters(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    by_model = await client.models.predictions.create("emulator/echo", {"text": "a"}, wait=True)
    version = (await client.models.get("emulator/echo")).latest_version
    assert version is not None
    by_version = await client.predictions.create(
        version=f"emulator/echo:{version.id}", input={"text": "b"}
    )
    assert (await client.predictions.get(by_version.id)).input == {"text": "b"}
    running = await client.predictions.create(model="emulator/sleep", input={"seconds": 30})
    canceled = await client.predictions.cancel(running.id)
    assert canceled.status == "canceled"
    assert canceled.metrics is not None
    assert "total_time" in canceled.metrics
    listed = [p.id async for p in client.predictions.list()]
    assert listed == [running.id, by_version.id, by_model.id]
    # Every prediction here came through the API: none from the web.
    assert [p.id async for p in client.predictions.list(source="web")] == []
    after = [p.id async for p in client.predictions.list(created_after=by_version.created_at)]
    assert after == [running.id, by_version.id]


async def test_trainings_wait_and_watch_like_predictions(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    version = (await client.models.get("emulator/sleep")).latest_version
    assert version is not None
    t = await client.trainings.create(
        "emulator/sleep", version.id, destination="emulator/trained", input={"seconds": 0.2}
    )
    assert isinstance(t, Training)
    assert (await client.trainings.get(t.id)).id == t.id
    states = [s async for s in client.trainings.watch(t)]
    assert all(isinstance(s, Training) for s in states)
    assert states[-1].status == "succeeded"
    done = await client.trainings.wait(t.id)
    assert isinstance(done, Training)
    assert done.status == "succeeded"
    long = await client.trainings.create(
        "emulator/sleep", version.id, destination="emulator/trained", input={"seconds": 30}
    )
    assert [x.id async for x in client.trainings.list()] == [long.id, t.id]
    assert (await client.trainings.cancel(long.id)).status == "canceled"
    assert (await client.trainings.wait(long)).status == "canceled"


# -- deployments ------------------------------------------------------------------------------


async def test_deployments_create_update_delete(client: AsyncReplicate, emulator: Emulator) -> None:
    version = (await client.models.get("emulator/echo")).latest_version
    assert version is not None
    with pytest.raises(ValueError, match="bare name"):
        await client.deployments.create(
            "acme/echoes",
            model="emulator/echo",
            version=version.id,
            hardware="cpu",
            min_instances=0,
            max_instances=2,
        )
    created = await client.deployments.create(
        "echoes",
        model="emulator/echo",
        version=version.id,
        hardware="cpu",
        min_instances=0,
        max_instances=2,
    )
    release = created.current_release
    assert release is not None
    assert (created.owner, created.name, release.number, release.version) == (
        "emulator",
        "echoes",
        1,
        version.id,
    )
    assert [d.name async for d in client.deployments.list()] == ["echoes"]
    p = await client.deployments.predictions.create("emulator/echoes", {"text": "d"}, wait=True)
    assert (p.output, p.deployment) == ("d", "emulator/echoes")
    updated = await client.deployments.update("emulator/echoes", max_instances=5)
    assert updated.current_release is not None
    assert updated.current_release.number == 2
    assert updated.current_release.configuration is not None
    assert updated.current_release.configuration.max_instances == 5
    assert (await client.deployments.get("emulator/echoes")).current_release == (
        updated.current_release
    )
    with pytest.raises(ValueError, match="max_instances"):
        await client.deployments.update("emulator/echoes", max_instances=21)
    with pytest.raises(ReplicateError) as bad_version:
        await client.deployments.update("emulator/echoes", version="0" * 64)
    assert bad_version.value.status == 400
    await client.deployments.delete("emulator/echoes")
    with pytest.raises(NotFoundError):
        await client.deployments.get("emulator/echoes")


# -- files ------------------------------------------------------------------------------------


async def test_files_and_signed_downloads(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    f = await client.files.create(b"hello, file", filename="hello.txt")
    assert (await client.files.get(f.id)).size == 11
    assert [x.id async for x in client.files.list()] == [f.id]
    signed = emulator.signed_download_url(f.id)
    assert await client.files.download(signed).read() == b"hello, file"
    # The signature is the credential: no token goes with it.
    saved = await client.files.download(signed).save(tmp_path / "hello.txt")
    assert saved.path.read_bytes() == b"hello, file"
    forged = re.sub(r"signature=[^&]+", "signature=AAAA", signed)
    with pytest.raises(NotFoundError):
        await client.files.download(forged).read()
    with pytest.raises(ValueError, match="owner, expiry, signature"):
        client.files.download(f.id)
    await client.files.delete(f.id)
    with pytest.raises(NotFoundError):
        await client.files.get(f.id)


# -- what the emulator answers to wrong requests ---------------------------------------------


async def _raw(emulator: Emulator, method: str, path: str, **kwargs: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {emulator.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{emulator.url}{path}", headers=headers, **kwargs) as reply,  # type: ignore[arg-type]
    ):
        return reply.status, json.loads(await reply.read() or b"null")


async def test_input_errors_are_worded_as_replicate_words_them(emulator: Emulator) -> None:
    def tune(i: dict[str, object], c: object) -> str:
        return "ok"

    emulator.add_model(
        "me/tuned",
        tune,
        inputs={
            "prompt": Input(str),
            "steps": Input(int, ge=1, le=4, default=2),
            "style": Input(str, choices=["jpg", "png"], default="png"),
        },
        output=str,
    )
    status, body = await _raw(
        emulator,
        "POST",
        "/models/me/tuned/predictions",
        json={"input": {"steps": 9, "style": "gif", "extra": 1}},
    )
    assert status == 422
    assert list(body) == ["detail", "status", "title", "invalid_fields"]
    assert body["detail"] == (
        "- input: prompt is required\n"
        "- input.steps: Must be less than or equal to 4\n"
        '- input.style: style must be one of the following: "jpg", "png"\n'
    )
    assert body["invalid_fields"][1] == {
        "type": "number_lte",
        "field": "input.steps",
        "description": "Must be less than or equal to 4",
    }
    status, body = await _raw(
        emulator, "POST", "/models/me/tuned/predictions", json={"input": {"prompt": 7}}
    )
    assert body["invalid_fields"] == [
        {
            "type": "invalid_type",
            "field": "input.prompt",
            "description": "Invalid type. Expected: string, given: integer",
        }
    ]
    # The body's own keys: unknown ones are refused, required ones must be there.
    status, body = await _raw(emulator, "POST", "/predictions", json={"model": "x", "input": {}})
    assert (status, body["detail"]) == (
        422,
        "- version is required\n- Additional property model is not allowed\n",
    )


async def test_wrong_routes_methods_and_queries(emulator: Emulator) -> None:
    assert await _raw(emulator, "GET", "/nothing/here") == (
        404,
        {"detail": "The requested resource could not be found.", "status": 404},
    )
    status, body = await _raw(emulator, "DELETE", "/predictions")
    assert (status, body["detail"]) == (405, 'Method "DELETE" not allowed.')
    status, body = await _raw(emulator, "GET", "/predictions?source=bogus")
    assert status == 400
    assert "source" in body["detail"]
    status, body = await _raw(emulator, "GET", "/models?sort_direction=sideways")
    assert status == 400
    status, body = await _raw(emulator, "GET", "/search")
    assert (status, body["detail"]) == (400, 'Query parameter "query" is required')
    status, body = await _raw(
        emulator,
        "POST",
        "/models",
        json={"owner": "emulator", "name": "-dog", "visibility": "private", "hardware": "cpu"},
    )
    assert status == 400
    assert body["detail"].startswith("Enter a valid name.")


async def test_models_publish_cog_schemas_and_streams_follow_them(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    def talk(i: dict[str, object], c: object) -> list[str]:
        return ["a", "b"]

    emulator.add_model(
        "me/llm",
        talk,
        inputs={"prompt": Input(str, description="What to say")},
        output=ConcatenateIterator[str],
    )
    schema = (await client.models.get("me/llm")).latest_version.openapi_schema  # type: ignore[union-attr]
    components = schema["components"]["schemas"]  # type: ignore[index]
    assert components["Output"] == {
        "type": "array",
        "items": {"type": "string"},
        "title": "Output",
        "x-cog-array-type": "iterator",
        "x-cog-array-display": "concatenate",
    }
    assert components["Input"]["required"] == ["prompt"]
    assert components["Input"]["properties"]["prompt"] == {
        "type": "string",
        "title": "Prompt",
        "x-order": 0,
        "description": "What to say",
    }
    # Keys in Postgres jsonb order, as Replicate serves stored schemas.
    assert list(schema) == ["info", "paths", "openapi", "components"]
    # A model that streams: every prediction has urls.stream, asked for or not.
    p = await client.models.predictions.create("me/llm", {"prompt": "hi"})
    assert p.urls is not None
    assert p.urls.stream
    assert p.stream is None  # not echoed when not asked for
    asked = await client.models.predictions.create("me/llm", {"prompt": "hi"}, stream=True)
    assert asked.stream is True
    echo = await client.models.predictions.create("emulator/echo", {"text": "x"})
    assert echo.urls is not None
    assert echo.urls.stream is None  # a plain string output cannot stream
    with pytest.raises(ValidationError, match="Streaming not supported"):
        await client.models.predictions.create("emulator/echo", {"text": "x"}, stream=True)
