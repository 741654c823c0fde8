"""client.use(): models as async functions, checked and decoded by their schemas."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from replicate_async import AsyncReplicate, FileOutput, PredictionFailed
from replicate_async.errors import InputValidationError, ValidationError
from replicate_async.testing import Emulator, Input, RunContext
from replicate_async.use import OutputIterator

CREATES = ("POST", "/predictions")
SCHEMA = ("GET", "/models/{owner}/{name}")
GET_ONE = ("GET", "/predictions/{id}")


def api_requests(emulator: Emulator) -> int:
    return sum(emulator.requests.values())


async def test_no_request_until_called_and_the_schema_fetched_once(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    echo = client.use("emulator/echo")
    assert api_requests(emulator) == 0
    results = await asyncio.gather(*(echo(text=f"t{i}") for i in range(10)))
    assert results == [f"t{i}" for i in range(10)]
    assert await echo(text="again") == "again"
    assert emulator.count(*SCHEMA) == 1  # ten concurrent first calls shared one fetch
    # After the first: exactly the create (held open, so the answer is in its reply).
    before = api_requests(emulator)
    assert await echo(text="one more") == "one more"
    assert api_requests(emulator) - before == 1
    # Another handle of the same model on the same client shares the schema.
    assert await client.use("emulator/echo")(text="x") == "x"
    assert emulator.count(*SCHEMA) == 1


async def test_every_kind_of_bad_input_is_refused_before_any_request(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.add_model(
        "me/typed",
        lambda input, ctx: input["n"],
        inputs={
            "prompt": Input(str, description="what to draw"),
            "n": Input(int, ge=1, le=4, default=1),
            "style": Input(str, choices=["flat", "deep"], default="flat"),
            "strength": Input(float, ge=0, le=1, default=0.5),
        },
        output=int,
    )
    typed = client.use("me/typed")
    bad = [
        ({"prompt": "x", "colour": "red"}, {"colour"}),  # unknown
        ({"n": 2}, {"prompt"}),  # missing required
        ({"prompt": 3}, {"prompt"}),  # wrong type
        ({"prompt": "x", "style": "round"}, {"style"}),  # not in the enum
        ({"prompt": "x", "n": 5, "strength": -1}, {"n", "strength"}),  # out of range, twice
    ]
    for given, fields in bad:
        with pytest.raises(InputValidationError) as caught:
            await typed(given)
        assert {p.field for p in caught.value.problems} == fields
        assert isinstance(caught.value, ValidationError)  # caught where a 422 would be
    assert emulator.count(*CREATES) == 0
    message = str(caught.value)
    assert message.startswith("2 inputs are not what me/typed takes")
    assert "n: 5 is not allowed: it takes an integer from 1 to 4" in message
    # Opted out: the request goes, and the server's 422 says the same.
    with pytest.raises(ValidationError) as server:
        await typed({"prompt": "x", "n": 5}, validate=False)
    assert not isinstance(server.value, InputValidationError) and server.value.status == 422
    assert await typed(prompt="x", n=3) == 3


async def test_a_string_that_looks_like_a_url_stays_a_string(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    url = "https://example.com/not-a-file.png"
    assert await client.use("emulator/echo")(text=url) == url
    # run() guesses by default (as the official client does), and decodes by the schema
    # when asked.
    assert isinstance(await client.run("emulator/echo", {"text": url}), FileOutput)
    assert await client.run("emulator/echo", {"text": url}, output_schema="auto") == url


async def test_file_outputs_become_file_outputs(client: AsyncReplicate) -> None:
    images = await client.use("emulator/images")(num_outputs=2, size_bytes=100)
    assert [type(f) for f in images] == [FileOutput, FileOutput]
    assert [len(await f.read()) for f in images] == [100, 100]


async def test_nested_file_fields_are_decoded_at_their_depth(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    def card(input: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"image": ctx.file("card.png", 10), "caption": "https://example.com/caption"}

    emulator.add_model("me/card", card, output={"image": Path, "caption": str})
    out = await client.use("me/card")()
    assert isinstance(out["image"], FileOutput) and out["caption"] == "https://example.com/caption"


async def test_iterator_outputs_stream_over_sse_without_polls(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    llm = client.use("emulator/stream")
    out = await llm(tokens=5, delay=0.02)
    assert isinstance(out, OutputIterator)
    with pytest.raises(RuntimeError, match="not complete yet"):
        str(out)
    chunks = [chunk async for chunk in out]
    assert chunks == [f"token{i} " for i in range(5)]
    assert str(out) == "".join(chunks) and await out.text() == "".join(chunks)
    assert await (await llm(tokens=3)).text() == "token0 token1 token2 "
    streamed = [chunk async for chunk in llm.stream(tokens=4)]
    assert streamed == [f"token{i} " for i in range(4)]
    assert emulator.count(*GET_ONE) == 0, "an iterator output was polled"
    assert len(emulator.stream_requests) == 3


async def test_stream_of_a_model_that_does_not_stream_yields_its_output_once(
    client: AsyncReplicate,
) -> None:
    assert [chunk async for chunk in client.use("emulator/echo").stream(text="whole")] == ["whole"]


async def test_a_run_handle(client: AsyncReplicate, emulator: Emulator) -> None:
    run = await client.use("emulator/sleep").create(seconds=5)
    assert run.prediction.status in ("starting", "processing")
    states = []
    async with run.watch() as watch:
        async for state in watch:
            states.append(state.status)
            if state.status == "processing":
                break
    assert run.prediction.status == "processing"  # the handle follows what it watched
    canceled = await run.cancel()
    assert canceled.status == "canceled"
    with pytest.raises(Exception, match="canceled"):
        await run.output()
    fails = await client.use("emulator/fail").create(message="boom")
    with pytest.raises(PredictionFailed, match="boom"):
        await fails.output()
    assert fails.logs  # the failure's logs, as of the last state seen


async def test_a_pinned_version_stays_and_a_model_follows_its_latest_after_ttl(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.add_model("me/versioned", lambda i, c: "v1", inputs={}, output=str, version="a" * 64)
    model = client.use("me/versioned", ttl=0)
    pinned = await model.pin()
    assert pinned.ref == f"me/versioned:{'a' * 64}"
    assert await model() == "v1" and await pinned() == "v1"
    emulator.add_model("me/versioned", lambda i, c: "v2", inputs={}, output=str, version="b" * 64)
    assert await model() == "v2"  # ttl=0: the latest version, fetched again
    assert await pinned() == "v1"  # pinned: the same version, for good
    explicit = client.use(f"me/versioned:{'a' * 64}")
    assert await explicit() == "v1"


async def test_file_inputs_where_the_schema_takes_files(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.add_model(
        "me/size",
        lambda input, ctx: len(input["prompt"]),
        inputs={"image": Input(Path), "prompt": Input(str)},
        output=int,
    )
    data = tmp_path / "in.bin"
    data.write_bytes(b"x" * 10)
    model = client.use("me/size")
    assert await model(image=data, prompt="four") == 4
    with pytest.raises(InputValidationError, match="prompt: takes text, not a file"):
        await model(image=data, prompt=data)


async def test_bad_refs_are_refused_at_once(client: AsyncReplicate) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        client.use("no-slash")
    with pytest.raises(ValueError, match="ends with ':'"):
        client.use("owner/name:")
    with pytest.raises(ValueError, match="output_schema"):
        await client.run("emulator/echo", {"text": "x"}, output_schema="guess")


async def test_the_command_line_prints_a_models_signature(emulator: Emulator) -> None:
    import os
    import sys

    env = {**os.environ, "REPLICATE_API_TOKEN": emulator.token, "REPLICATE_BASE_URL": emulator.url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "replicate_async",
        "models",
        "signature",
        "emulator/images",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines() == [
        "emulator/images(",
        "    num_outputs: int = 1 (>= 0)  # How many files.",
        "    size_bytes: int = 1024 (>= 0)  # Bytes in each file.",
        ") -> list[FileOutput]",
    ]


async def test_recorded_schemas_served_by_the_emulator_refuse_bad_inputs_unsent(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    import json

    from tests.conftest import PAYLOADS

    def recorded(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((PAYLOADS / "recorded" / name).read_text())
        return data["openapi_schema"]

    def draw(input: dict[str, Any], ctx: RunContext) -> list[str]:
        return [ctx.file(f"out-{i}.png", 8) for i in range(int(input.get("num_outputs", 1)))]

    def chat(input: dict[str, Any], ctx: RunContext) -> list[str]:
        for word in ("https://example.com", " is", " a site"):
            ctx.emit(word)
        return ["https://example.com", " is", " a site"]

    emulator.add_model("me/sdxl", draw, schema=recorded("version.get.200.sdxl.json"), files=True)
    emulator.add_model(
        "me/llama", chat, schema=recorded("version.get.200.llama-2-70b-chat.json"), streams=True
    )
    sdxl, llama = client.use("me/sdxl"), client.use("me/llama")
    for bad in (
        {"promt": "x"},
        {"width": "wide"},
        {"num_outputs": 9},
        {"scheduler": "FAST"},
        {"prompt": Path(__file__)},
    ):
        with pytest.raises(InputValidationError):
            await sdxl(bad)
    with pytest.raises(InputValidationError, match="prompt: required"):
        await llama(temperature=0.5)
    assert emulator.count(*CREATES) == 0
    images = await sdxl(prompt="a corgi", num_outputs=2, scheduler="DDIM")
    assert [type(image) for image in images] == [FileOutput, FileOutput]
    text = await llama(prompt="a URL?")
    assert [chunk async for chunk in text] == ["https://example.com", " is", " a site"]
    assert await text.text() == "https://example.com is a site"  # text, never a file
