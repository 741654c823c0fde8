"""Static checks of client.use()'s types: run by mypy in .ci/run, never executed."""

from __future__ import annotations

from typing import Any

from typing_extensions import assert_type

from replicate_async import AsyncReplicate, FileOutput, OutputIterator, RemoteModel, Run


async def stated_outputs(client: AsyncReplicate) -> None:
    images = client.use("stability-ai/sdxl", output=list[FileOutput])
    assert_type(images, RemoteModel[list[FileOutput]])
    assert_type(await images(prompt="a corgi"), list[FileOutput])
    run = await images.create(prompt="a corgi")
    assert_type(run, Run[list[FileOutput]])
    assert_type(await run.output(), list[FileOutput])

    llm = client.use("meta/meta-llama-3-8b-instruct", output=OutputIterator[str])
    out = await llm(prompt="hi")
    assert_type(out, OutputIterator[str])
    assert_type(await out.text(), str)
    async for chunk in out:
        assert_type(chunk, str)


async def unstated_output(client: AsyncReplicate) -> None:
    model = client.use("owner/name")
    assert_type(model, RemoteModel[Any])
    assert_type(await model({"validate": "an input named like an option"}), Any)
