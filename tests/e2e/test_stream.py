"""client.stream(): SSE end to end against the emulator's streaming host."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from replicate_async import AsyncReplicate, PredictionCanceled, PredictionFailed, StreamPolicy
from replicate_async.errors import ValidationError
from replicate_async.protocol.sse import ServerSentEvent
from replicate_async.testing import Emulator, RunContext

TOKENS = [f"token{i} " for i in range(8)]


async def test_stream_yields_the_text_as_it_is_made(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    stream = client.stream("emulator/stream", input={"tokens": 8, "delay": 0.02})
    events = [event async for event in stream]
    assert [e.event for e in events] == ["output"] * 8
    assert "".join(str(e) for e in events) == "".join(TOKENS)
    assert stream.prediction is not None and stream.prediction.urls is not None
    assert stream.prediction.urls.stream.startswith(emulator.stream_url)
    (headers,) = emulator.stream_requests
    assert "Authorization" not in headers  # the stream host is not the API host
    assert headers["Accept"] == "text/event-stream"
    assert headers["Cache-Control"] == "no-store"


async def test_logs_come_through_and_str_is_empty_for_them(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    @emulator.model("me/chatty", streams=True)
    async def chatty(input: dict[str, Any], ctx: RunContext) -> None:
        ctx.log("warming up")
        ctx.emit("hello")
        ctx.log("done now")

    events = [e async for e in client.stream("me/chatty")]
    assert [(e.event, e.data) for e in events] == [
        ("logs", "warming up"),
        ("output", "hello"),
        ("logs", "done now"),
    ]
    assert [str(e) for e in events] == ["", "hello", ""]


async def test_multi_line_output(client: AsyncReplicate, emulator: Emulator) -> None:
    emulator.add_model(
        "me/poem", lambda i, ctx: ctx.emit("roses are red\nviolets\r\nblue"), streams=True
    )
    events = [e async for e in client.stream("me/poem")]
    assert [e.data for e in events] == ["roses are red\nviolets\nblue"]


async def test_an_error_event_raises_after_the_events_before_it(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    @emulator.model("me/breaks", streams=True)
    async def breaks(input: dict[str, Any], ctx: RunContext) -> None:
        ctx.emit("one ")
        ctx.emit("two ")
        raise RuntimeError("ran out of memory")

    got: list[str] = []
    with pytest.raises(PredictionFailed, match="ran out of memory") as info:
        async for event in client.stream("me/breaks"):
            got.append(str(event))
    assert got == ["one ", "two "]
    assert info.value.prediction.status == "failed"
    assert info.value.prediction.error == "ran out of memory"
    assert client._session.transport.connector_stats()[0] == 0


async def test_a_canceled_prediction_ends_the_stream_with_an_error(
    client: AsyncReplicate,
) -> None:
    got: list[str] = []
    stream = client.stream("emulator/stream", input={"tokens": 100, "delay": 0.05})
    with pytest.raises(PredictionCanceled, match="canceled"):
        async for event in stream:
            got.append(str(event))
            if len(got) == 3:
                assert stream.prediction is not None
                await client.predictions.cancel(stream.prediction.id)
    assert 3 <= len(got) < 100


async def test_a_model_that_does_not_stream_is_a_clear_error(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    with pytest.raises(ValidationError, match=r"does not stream.*client\.run") as info:
        async for _ in client.stream("emulator/echo", input={"text": "x"}):
            pass
    assert info.value.status == 422
    assert info.value.detail == (
        "Streaming not supported for the output type of the requested version."
    )
    assert emulator.stream_requests == []


async def test_stream_an_existing_prediction(client: AsyncReplicate) -> None:
    p = await client.predictions.create(
        model="emulator/stream", input={"tokens": 4, "delay": 0.02}, stream=True
    )
    assert [str(e) async for e in client.predictions.stream(p)] == TOKENS[:4]
    # by id too, after it finished: the stream replays from the start
    assert [str(e) async for e in client.predictions.stream(p.id)] == TOKENS[:4]


async def test_a_prediction_of_a_model_that_can_stream_streams_without_asking(
    client: AsyncReplicate,
) -> None:
    # Replicate deprecated "stream": true: every prediction of such a model has a stream.
    p = await client.predictions.create(model="emulator/stream", input={"tokens": 2})
    assert p.urls is not None
    assert p.urls.stream
    assert [str(e) async for e in client.predictions.stream(p.id)] == TOKENS[:2]


async def test_a_prediction_that_cannot_stream_says_what_to_do_instead(
    client: AsyncReplicate,
) -> None:
    p = await client.predictions.create(model="emulator/echo", input={"text": "hi"})
    with pytest.raises(ValueError, match=r"does not stream.*predictions\.wait"):
        async for _ in client.predictions.stream(p.id):
            pass


async def test_break_releases_the_connection_at_once(client: AsyncReplicate) -> None:
    async for _ in client.stream("emulator/stream", input={"tokens": 50, "delay": 0.02}):
        break
    assert client._session.transport.connector_stats()[0] == 0


async def test_aclose_and_async_with_release_the_connection(client: AsyncReplicate) -> None:
    stream = client.stream("emulator/stream", input={"tokens": 50, "delay": 0.02})
    await stream.__anext__()
    assert client._session.transport.connector_stats()[0] == 1
    await stream.aclose()
    assert client._session.transport.connector_stats()[0] == 0
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    async with client.stream("emulator/stream", input={"tokens": 50, "delay": 0.02}) as s:
        await s.__anext__()
    assert client._session.transport.connector_stats()[0] == 0


async def test_cancelling_the_task_releases_the_connection(client: AsyncReplicate) -> None:
    first = asyncio.Event()

    async def consume() -> None:
        # (Not cancelling the prediction: that request would be in the air here too;
        # tests/e2e/test_bulk.py checks that one.)
        stream = client.stream(
            "emulator/stream", input={"tokens": 50, "delay": 0.05}, cancel_on_exit=False
        )
        async for _ in stream:
            first.set()

    task = asyncio.ensure_future(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client._session.transport.connector_stats()[0] == 0


async def test_a_dropped_connection_resumes_without_loss_or_duplicates(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.drop_stream_after(3, times=2)
    events = [e async for e in client.stream("emulator/stream", input={"tokens": 8, "delay": 0.02})]
    assert [str(e) for e in events] == TOKENS
    assert len(emulator.stream_requests) == 3
    resumed_from = [h.get("Last-Event-ID") for h in emulator.stream_requests]
    assert resumed_from[0] is None
    assert resumed_from[1] is not None and resumed_from[1].endswith(":2")


async def test_a_stream_that_cannot_resume_falls_back_to_the_output(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    emulator.drop_stream_after(3, resumable=False)
    events = [e async for e in client.stream("emulator/stream", input={"tokens": 8, "delay": 0.02})]
    assert [str(e) for e in events] == TOKENS  # nothing lost, nothing twice
    assert [e.id is None for e in events] == [False] * 3 + [True] * 5  # the rest came by polling


async def test_an_idle_stream_reconnects_after_the_408_comment() -> None:
    async with (
        Emulator(stream_idle_timeout=0.2) as emu,
        AsyncReplicate(api_token=emu.token, base_url=emu.url) as c,
    ):
        events = [
            str(e) async for e in c.stream("emulator/stream", input={"tokens": 3, "delay": 0.35})
        ]
        assert events == TOKENS[:3]
        assert len(emu.stream_requests) >= 3  # it hung up while idle; we came back


async def test_file_streams_give_file_outputs(client: AsyncReplicate, emulator: Emulator) -> None:
    @emulator.model("me/frames", streams=True, files=True)
    def frames(input: dict[str, Any], ctx: RunContext) -> None:
        ctx.emit(ctx.file("frame-0.png", 1000))
        ctx.emit("data:image/png;base64,aGVsbG8=")

    stream = client.stream("me/frames")
    events: list[ServerSentEvent] = [e async for e in stream]
    assert stream.prediction is not None and stream.prediction.urls is not None
    assert "/v1/files/" in (stream.prediction.urls.stream or "")
    assert all(e.file is not None for e in events)
    assert len(await events[0].file.read()) == 1000  # type: ignore[union-attr]
    assert await events[1].file.read() == b"hello"  # type: ignore[union-attr]
    assert str(events[0]) == events[0].data  # str() is still the URL


async def test_a_failed_stream_does_not_start_again(
    client: AsyncReplicate, emulator: Emulator
) -> None:
    stream = client.stream("emulator/echo", input={"text": "x"})  # echo does not stream
    with pytest.raises(ValidationError):
        async for _ in stream:
            pass
    assert [e async for e in stream] == []  # a second iteration ends; it creates nothing
    assert emulator.count("POST", "/models/{owner}/{name}/predictions") == 1


async def test_the_reconnect_budget_is_per_drop(client: AsyncReplicate, emulator: Emulator) -> None:
    # More drops in all than max_reconnects, but each followed by events: never a fallback.
    emulator.drop_stream_after(2, times=8)
    stream = client.stream(
        "emulator/stream",
        input={"tokens": 20, "delay": 0.01},
        policy=StreamPolicy(max_reconnects=2),
    )
    tokens = [str(e) async for e in stream if e.event == "output"]
    assert tokens == [f"token{i} " for i in range(20)]
    assert len(emulator.stream_requests) >= 8


async def test_a_long_stream_keeps_nothing_per_event(client: AsyncReplicate) -> None:
    import tracemalloc

    ours = [
        tracemalloc.Filter(True, "*replicate_async/streaming.py"),
        tracemalloc.Filter(True, "*replicate_async/protocol/sse.py"),
    ]
    tracemalloc.start()
    try:
        stream = client.stream("emulator/stream", input={"tokens": 20_000, "delay": 0})
        count = 0
        async for _ in stream:
            count += 1
        # The stream object is still alive: whatever it kept per event would be here.
        held = sum(
            s.size for s in tracemalloc.take_snapshot().filter_traces(ours).statistics("filename")
        )
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert held < 64 * 1024, f"a 20,000-event stream still holds {held:,} bytes"
