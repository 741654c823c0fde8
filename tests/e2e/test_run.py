"""run(): create, wait, decode, against the emulator over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from replicate_async import AsyncReplicate, FileOutput, PredictionCanceled, PredictionFailed
from replicate_async.testing import Emulator, RunContext


async def test_run_official_model_returns_output(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    assert await client.run("emulator/echo", input={"text": "hello"}) == "hello"
    assert emulator.count("POST", "/models/{owner}/{name}/predictions") == 1
    # Prefer: wait made polling unnecessary
    assert emulator.count("GET", "/predictions/{id}") == 0


async def test_run_by_version_and_bare_version_id(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    model = await client.models.get("emulator/echo")
    assert model.latest_version is not None
    vid = model.latest_version.id
    assert await client.run(f"emulator/echo:{vid}", input={"text": "a"}) == "a"
    assert await client.run(vid, input={"text": "b"}) == "b"
    assert emulator.count("POST", "/predictions") == 2


@pytest.mark.parametrize("wait", [False, 1, True])
async def test_run_polls_when_not_finished(
    client: AsyncReplicate, emulator: Emulator, wait: bool | int
) -> None:
    assert await client.run("emulator/sleep", input={"seconds": 1.3}, wait=wait) is None
    polls = emulator.count("GET", "/predictions/{id}")
    if wait is True:
        assert polls == 0  # held open up to 60 s: done in one request
    else:
        assert 1 <= polls <= 25  # backing off, not hammering


async def test_failed_prediction_raises_with_error_and_logs(client: AsyncReplicate) -> None:
    with pytest.raises(PredictionFailed) as info:
        await client.run("emulator/fail", input={"message": "boom"})
    err = info.value
    assert err.prediction.status == "failed"
    assert err.prediction.error == "boom"
    assert "boom" in str(err) and "about to fail" in str(err)


async def test_canceled_prediction_raises(client: AsyncReplicate) -> None:
    task = asyncio.ensure_future(client.run("emulator/sleep", input={"seconds": 30}, wait=False))
    while True:
        await asyncio.sleep(0.02)
        page = [p async for p in client.predictions.list()]
        if page:
            break
    await client.predictions.cancel(page[0].id)
    with pytest.raises(PredictionCanceled, match="canceled") as info:
        await task
    assert info.value.prediction.status == "canceled"


async def test_cancel_after_sets_a_deadline_and_aborts_an_unstarted_prediction() -> None:
    slow = Emulator(start_delay=10)  # predictions stay "starting" for 10 s
    async with slow, AsyncReplicate(api_token=slow.token, base_url=slow.url) as c:
        p = await c.predictions.create(
            model="emulator/echo", input={"text": "x"}, cancel_after="5s"
        )
        assert p.deadline is not None and p.created_at is not None
        assert 4 <= (p.deadline - p.created_at).total_seconds() <= 6
        job = slow.predictions[p.id]
        assert job.timer is not None
        job.timer._run()  # fire the Cancel-After deadline now rather than in 5 s
        final = await c.predictions.wait(p)
        assert final.status == "aborted"
        with pytest.raises(PredictionCanceled, match="aborted"):
            c.output_of(final)


async def test_file_outputs_read_iterate_save(
    client: AsyncReplicate, emulator: Emulator, tmp_path: Path
) -> None:
    files = await client.run("emulator/images", input={"num_outputs": 2, "size_bytes": 300_000})
    assert isinstance(files, list) and all(isinstance(f, FileOutput) for f in files)
    data = await files[0].read()
    assert len(data) == 300_000
    assert await files[0].read() == data  # re-readable
    chunks = [c async for c in files[1]]
    assert len(chunks) > 1 and sum(map(len, chunks)) == 300_000
    saved = await files[0].save(tmp_path / "a.png")
    assert saved.size == 300_000 and saved.path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]  # no temp file left behind
    assert hashlib.sha256(data).hexdigest() != hashlib.sha256(await files[1].read()).hexdigest()
    # the delivery host never saw the token
    assert emulator.delivery_requests
    assert all("Authorization" not in h for h in emulator.delivery_requests)


async def test_use_file_output_false_returns_strings(client: AsyncReplicate) -> None:
    urls = await client.run("emulator/images", input={"num_outputs": 1}, use_file_output=False)
    assert isinstance(urls[0], str) and urls[0].startswith("https://127.0.0.1:")


async def test_nested_outputs_and_data_uris_become_file_outputs(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    def nested(input: dict[str, object], ctx: RunContext) -> object:
        return {
            "images": [ctx.file("x.bin", 10)],
            "inline": "data:text/plain;base64,aGVsbG8=",
            "text": "not a url",
            "n": 3,
        }

    emulator.add_model("me/nested", nested)
    out = await client.run("me/nested")
    assert isinstance(out["images"][0], FileOutput)
    assert await out["inline"].read() == b"hello"
    assert out["inline"].content_type == "text/plain"
    assert out["text"] == "not a url" and out["n"] == 3


async def test_a_registered_python_model(client: AsyncReplicate, emulator: Emulator) -> None:
    @emulator.model("me/upper", inputs={"text": ("string", ...)})
    async def upper(input: dict[str, str], ctx: RunContext) -> str:
        ctx.log("uppercasing")
        return input["text"].upper()

    assert await client.run("me/upper", input={"text": "abc"}) == "ABC"


async def test_malformed_ref_fails_before_any_request(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    for bad in ["nope", "a/b/c", "owner/name:", ""]:
        with pytest.raises(ValueError, match="owner/name"):
            await client.run(bad, input={})
    assert sum(emulator.requests.values()) == 0


async def test_input_that_is_not_json_fails_before_any_request(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    with pytest.raises(TypeError, match="not JSON"):
        await client.run("emulator/echo", input={"text": object()})
    with pytest.raises(TypeError, match="dict"):
        await client.run("emulator/echo", input=["text"])  # type: ignore[arg-type]
    assert sum(emulator.requests.values()) == 0
