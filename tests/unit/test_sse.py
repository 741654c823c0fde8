"""The SSE decoder: WHATWG rules, any split of the bytes, and Replicate's examples."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replicate_async.protocol.sse import EventTooLarge, ReplayFilter, ServerSentEvent, SSEDecoder
from replicate_async.testing._wire import sse_frame
from tests.conftest import PAYLOADS


def decode(data: bytes, chunks: list[int] | None = None) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    if chunks is None:
        events += decoder.feed(data)
    else:
        at = 0
        for size in chunks:
            events += decoder.feed(data[at : at + size])
            at += size
        events += decoder.feed(data[at:])
    return events


def fixture(name: str) -> bytes:
    return json.loads((PAYLOADS / "documented" / name).read_text())["body"].encode()


def test_replicate_succeeded_example() -> None:
    events = decode(fixture("sse.succeeded.json"))
    assert [(e.event, e.data, e.id) for e in events] == [
        ("output", "Once upon a time...", "1690212292:0"),
        ("output", "The End.", "1690212293:0"),
        ("done", "{}", None),  # no id of its own: kept, not dropped
    ]
    assert "".join(str(e) for e in events) == "Once upon a time...The End."


def test_error_and_canceled_examples() -> None:
    error = decode(fixture("sse.error.json"))
    assert [e.event for e in error] == ["output", "error", "done"]
    assert error[1].json() == {"detail": "Something went wrong"}
    assert error[2].json() == {"reason": "error"}
    canceled = decode(fixture("sse.canceled.json"))
    assert canceled[-1].json() == {"reason": "canceled"}


def test_comments_preamble_and_408_are_skipped() -> None:
    events = decode(fixture("sse.nchan-hi-preamble.json"))
    assert [(e.event, e.data) for e in events] == [("output", "hello world"), ("done", "{}")]
    assert decode(fixture("sse.408-timeout-comment.json")) == []


def test_file_stream_example() -> None:
    events = decode(fixture("sse.file-stream.json"))
    assert events[0].data.startswith("data:image/png;base64,")
    assert events[1].data == "https://delivery.replicate.com/my_file.png"
    assert events[2].id == "EVENT_3"


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_line_ends(newline: str) -> None:
    body = newline.join(["event: output", "data: a", "data: b", "", "data: c", "", ""])
    events = decode(body.encode())
    assert [(e.event, e.data) for e in events] == [("output", "a\nb"), ("message", "c")]


def test_field_parsing_rules() -> None:
    body = (
        "\ufeffdata:no space\n\n"  # BOM dropped; no space after the colon is fine
        "data:  two spaces\n\n"  # only one space is removed
        "data\n\n"  # a field with no colon: empty value, still an event
        "id: a\0b\ndata: x\n\n"  # an id with NUL is ignored
        "retry: 1500\ndata: y\n\n"
        "retry: 15x\ndata: z\n\n"  # not digits: ignored
        "event: custom\nfoo: bar\ndata: w\n\n"  # unknown fields ignored, unknown types kept
        "event: orphan\n\n"  # no data: nothing dispatched
        "data: tail-without-blank-line"  # an unfinished event at EOF is dropped
    )
    events = decode(body.encode())
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        ("message", "no space", None, None),
        ("message", " two spaces", None, None),
        ("message", "", None, None),
        ("message", "x", None, None),
        ("message", "y", None, 1500),
        ("message", "z", None, None),
        ("custom", "w", None, None),
    ]


def test_last_event_id_persists_for_reconnects() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 7\ndata: a\n\ndata: b\n\n")
    assert decoder.last_event_id == "7"


def test_the_resume_point_moves_only_when_an_event_is_whole() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\nevent: output\n")  # cut inside event 2
    # A reconnect must ask for what follows 1: event 2 never arrived whole.
    assert decoder.last_event_id == "1"
    decoder.feed(b"data: b\n\n")
    assert decoder.last_event_id == "2"


def test_a_long_line_under_the_cap_is_fine() -> None:
    token = "x" * 5_000_000
    (event,) = decode(f"event: output\ndata: {token}\n\n".encode(), chunks=[100] * 50)
    assert event.data == token


@pytest.mark.parametrize(
    "wire",
    [
        b"data: " + b"x" * 2000,  # one line that never ends
        b"data: xxxxxxxxxx\n" * 300,  # an event that never ends (no blank line)
    ],
)
def test_a_line_or_event_over_the_cap_is_refused(wire: bytes) -> None:
    decoder = SSEDecoder(max_event_size=1000)
    with pytest.raises(EventTooLarge, match="max_event_size"):
        for start in range(0, len(wire), 64):
            decoder.feed(wire[start : start + 64])
    # Nothing of it is kept: the decoder's memory is back to nothing.
    assert decoder.feed(b"data: ok\n\n") == [ServerSentEvent("message", "ok")]


def test_crlf_and_utf8_split_across_chunks() -> None:
    body = "data: é€😀\r\n\r\ndata: b\r\n\r\n".encode()
    for cut in range(1, len(body)):
        events = decode(body, chunks=[cut])
        assert [e.data for e in events] == ["é€😀", "b"], cut


def test_str_of_events() -> None:
    assert str(ServerSentEvent("output", "hi")) == "hi"
    assert str(ServerSentEvent("logs", "hi")) == ""
    assert str(ServerSentEvent("done", "{}")) == ""


def test_the_emulators_frames_decode_to_what_it_meant() -> None:
    # The emulator encodes with its own code: the two sides check each other.
    wire = sse_frame("output", "line 1\nline 2\r\nline 3", "1:0")
    (event,) = decode(wire)
    assert (event.event, event.data, event.id) == ("output", "line 1\nline 2\nline 3", "1:0")


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
_event = st.tuples(
    st.sampled_from(["output", "logs", "error", "done", "custom"]),
    st.lists(_text.filter(lambda s: "\n" not in s and "\r" not in s), min_size=1, max_size=3),
    st.one_of(st.none(), st.text(alphabet="0123456789:abc", min_size=1, max_size=12)),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    newline = draw(st.sampled_from(["\n", "\r", "\r\n"]))
    parts = ["\ufeff"] if draw(st.booleans()) else []  # a BOM, which may be split too
    parts += [": hi" + newline + newline] if draw(st.booleans()) else []
    for kind, lines, event_id in draw(st.lists(_event, max_size=8)):
        block = [f"event: {kind}"]
        if event_id is not None:
            block.append(f"id: {event_id}")
        block += [f"data: {line}" for line in lines]
        parts.append(newline.join(block) + newline + newline)
    data = "".join(parts).encode()
    cuts = draw(st.lists(st.integers(min_value=0, max_value=max(1, len(data))), max_size=12))
    return data, cuts


@settings(max_examples=300, deadline=None)
@given(streams())
def test_any_split_gives_the_same_events_as_the_whole(stream: tuple[bytes, list[int]]) -> None:
    data, cuts = stream
    points = sorted(set(cuts))
    sizes = [b - a for a, b in zip([0, *points], points, strict=False)]
    assert decode(data, chunks=sizes) == decode(data)


def test_replays_of_ordered_ids_are_caught_with_one_id_of_memory() -> None:
    replays = ReplayFilter(window=4)
    ids = [f"1690212292:{i}" for i in range(100_000)]
    assert not any(replays.seen(i) for i in ids)  # one connection: nothing is a replay
    replays.resumed("1690212292:99999")
    # A server that replays from the start after a reconnect: every old id is caught,
    # however far back (far beyond the window), and nothing was stored per event.
    assert all(replays.seen(i) for i in ids[::997])
    assert replays.seen("1690212292:99999")
    assert not replays.seen("1690212293:0")  # past the resume point: new
    assert not replays.seen("1690212293:1")
    assert not replays._recent


def test_a_server_that_resumes_properly_loses_nothing() -> None:
    replays = ReplayFilter()
    assert not replays.seen("5-0")
    replays.resumed("5-0")
    assert [replays.seen(i) for i in ["5-1", "6-0", "7-0"]] == [False, False, False]
    replays.resumed("")  # nothing to resume from: nothing is old
    assert not replays.seen("1-0")


def test_opaque_ids_are_remembered_in_a_bounded_window() -> None:
    replays = ReplayFilter(window=3)
    assert [replays.seen(i) for i in ["a", "b", "a", "c", "d"]] == [
        False,
        False,
        True,
        False,
        False,
    ]
    assert len(replays._recent) == 3
    assert replays.seen("d") and not replays.seen("a")  # "a" fell out of the window


def reference(text: str) -> tuple[list[tuple[str, str, str | None, int | None]], str]:
    """The WHATWG rules, spelled out plainly (no fast paths), over the whole text."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines.pop()  # what follows the last line end is unfinished
    events: list[tuple[str, str, str | None, int | None]] = []
    event, data, event_id, retry, last = "", [], None, None, ""
    for line in lines:
        if line == "":
            if event_id is not None:
                last = event_id
            if data:
                events.append((event or "message", "\n".join(data), event_id, retry))
            event, data, event_id, retry = "", [], None, None
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
        elif field == "id" and "\0" not in value:
            event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return events, last


_value = st.text(alphabet="ab :\0é", max_size=4)
_line = st.one_of(
    st.just(""),
    st.tuples(
        st.sampled_from(["data", "id", "event", "retry", "", "d", "i", "e", "da", "ide", "foo"]),
        st.sampled_from([": ", ":", ":  ", ""]),
        st.one_of(_value, st.sampled_from(["output", "12", "1690212292:7", "a\0b", " x", "é:"])),
    ).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(_line, max_size=30),
    newline=st.sampled_from(["\n", "\r", "\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_the_decoder_agrees_with_the_plain_rules(
    lines: list[str], newline: str, cuts: list[int]
) -> None:
    text = "".join(line + newline for line in lines)
    data = text.encode()
    points = sorted({c for c in cuts if c <= len(data)})
    decoder = SSEDecoder()
    got: list[ServerSentEvent] = []
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        got += decoder.feed(data[start:end])
    events, last = reference(text)
    assert [(e.event, e.data, e.id, e.retry) for e in got] == events
    assert decoder.last_event_id == last
