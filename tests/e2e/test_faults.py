"""The fault matrix: every operation against every fault has one asserted outcome.

Each case runs the real client against a misbehaving server on 127.0.0.1 (see
``tests/hostile.py``): retried and succeeded, or a clear typed error. And in every case,
whatever the outcome: bounded in time, no duplicate prediction, no short file or stream
passed as whole, no connection left open, and the API token in no exception (however
deep in its causes) and no log record. ``OUTCOMES`` is the table the README shows;
``test_the_readme_shows_this_table`` keeps the two the same.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from replicate_async import AsyncReplicate, RetryPolicy, StreamPolicy, Timeouts
from replicate_async import errors as e
from replicate_async.types import Prediction
from replicate_async.webhooks import WebhookVerificationError, verify
from tests import hostile as h
from tests.conftest import FAST_POLLING

#: recognisable anywhere it might leak
TOKEN = "r8_" + "LeakMe" * 6
#: every wait in a case ends well within this
CASE_DEADLINE = 30.0

FAST_RETRY = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)
#: short deadlines, so the slow faults (hang, drip) end in a second, not a minute
TIMEOUTS = Timeouts(connect=1.0, read=0.5, total=1.5, progress=0.5)
STREAM_POLICY = StreamPolicy(
    initial_backoff=0.01, max_backoff=0.05, read_timeout=0.5, idle_timeout=0.5
)

OK = "ok"


@attrs.frozen
class Expect:
    """A typed error, and words its message must contain."""

    error: type[BaseException]
    words: str = ""

    def __str__(self) -> str:
        return self.error.__name__


Outcome = Expect | str


def make_client(base_url: str) -> AsyncReplicate:
    return AsyncReplicate(
        api_token=TOKEN,
        base_url=base_url,
        timeouts=TIMEOUTS,
        retry=FAST_RETRY,
        polling=FAST_POLLING,
    )


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and everything chained to it, however deep."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [x for x in (item.__cause__, item.__context__) if x is not None]


def assert_token_nowhere(error: BaseException | None, records: list[logging.LogRecord]) -> None:
    """The token in no message, attribute or repr of the chain, and in no log record."""
    if error is not None:
        for item in causes(error):
            texts = [str(item), repr(item), *map(repr, item.args)]
            texts += [repr(value) for value in vars(item).values()]
            request_info = getattr(item, "request_info", None)
            assert request_info is None, f"aiohttp's request_info kept in {type(item).__name__}"
            for text in texts:
                assert TOKEN not in text, f"token leaked in {type(item).__name__}: {text[:200]}"
    for record in records:
        assert TOKEN not in record.getMessage(), f"token in a log record: {record.getMessage()}"


async def outcome_of(work: Awaitable[Any]) -> tuple[Any, BaseException | None]:
    try:
        return await asyncio.wait_for(work, CASE_DEADLINE), None
    except asyncio.TimeoutError:
        raise AssertionError(f"hung: no outcome within {CASE_DEADLINE} s") from None
    except e.ReplicateError as error:
        return None, error
    except ValueError as error:
        return None, error


def check(expected: Outcome, result: Any, error: BaseException | None) -> None:
    if expected == OK:
        assert error is None, f"expected success, got {type(error).__name__}: {error}"
        return
    assert isinstance(expected, Expect)
    assert isinstance(error, expected.error), (
        f"expected {expected.error.__name__}, got "
        f"{type(error).__name__ if error else 'success'}: {error or result}"
    )
    assert expected.words.lower() in str(error).lower(), str(error)


# -- API operations -------------------------------------------------------------------------

PID = "hostile0001"
OPS: dict[str, Callable[[AsyncReplicate], Awaitable[Any]]] = {
    "create": lambda c: c.predictions.create(version=h.VERSION, input={"prompt": "hi"}),
    "get": lambda c: c.predictions.get(PID),
    "list": lambda c: _all(c.predictions.list()),
    "cancel": lambda c: c.predictions.cancel(PID),
    "upload": lambda c: c.files.create(b"twelve bytes"),
}


async def _all(pager: Any) -> list[Any]:
    return [item async for item in pager]


def _http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


def _throttled(retry_after: str | None) -> h.Behaviour:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    body = {"title": "Request was throttled", "detail": "Request was throttled.", "status": 429}
    return h.reply(429, body, "application/problem+json", headers)


_PROXY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
_PREDICTION_TEXT = b'{"id": "hostile0001", "status": "succeeded", "output": ["a", "b"]}'
_WRONG_TYPES = {
    "id": None,
    "status": "succeeded",
    "created_at": True,
    "results": 5,
    "name": 3,
    "urls": "x",
}


@attrs.frozen
class APIFault:
    """A fault on the API host. ``acted``: the server did the work before the reply broke."""

    name: str
    make: Callable[[h.MiniAPI, str], h.Behaviour]  # (the normal API, another origin's URL)
    reads: Outcome  # get, list, cancel, upload: idempotent, retried
    create: Outcome
    times: int = 1
    acted: bool = False

    def behaviour(self, api: h.MiniAPI, elsewhere: str) -> h.Behaviour:
        inner = self.make(api, elsewhere)
        return h.then(inner, api) if self.acted else inner


NOT_SENT_TWICE = Expect(e.CreateOutcomeUnknownError, "not re-sent")

API_FAULTS = [
    APIFault("connection refused", lambda a, o: a, Expect(e.ConnectError), Expect(e.ConnectError)),
    APIFault("reset before the reply", lambda a, o: h.reset(), OK, NOT_SENT_TWICE),
    APIFault("reset after acting", lambda a, o: h.reset(), OK, OK, acted=True),
    APIFault(
        "reset mid-body",
        lambda a, o: h.truncated(200, _PREDICTION_TEXT, 20),
        OK,
        OK,
        acted=True,
    ),
    APIFault("429, Retry-After: inf", lambda a, o: _throttled("inf"), OK, OK),
    APIFault("429, Retry-After: nan", lambda a, o: _throttled("nan"), OK, OK),
    APIFault("429, Retry-After: -5", lambda a, o: _throttled("-5"), OK, OK),
    APIFault("429, Retry-After: soon", lambda a, o: _throttled("soon"), OK, OK),
    APIFault("429, Retry-After: an HTTP date", lambda a, o: _throttled(_http_date(0.3)), OK, OK),
    APIFault("429, no Retry-After", lambda a, o: _throttled(None), OK, OK),
    APIFault(
        "429, Retry-After: 1e9",
        lambda a, o: _throttled("1e9"),
        Expect(e.RateLimitError),
        Expect(e.RateLimitError),
    ),
    APIFault(
        "500",
        lambda a, o: h.reply(500, {"detail": "boom"}, "application/problem+json"),
        OK,
        NOT_SENT_TWICE,
    ),
    APIFault(
        "502 HTML page", lambda a, o: h.reply(502, _PROXY_PAGE, "text/html"), OK, NOT_SENT_TWICE
    ),
    APIFault(
        "503",
        lambda a, o: h.reply(503, b"Service Unavailable", "text/plain"),
        OK,
        NOT_SENT_TWICE,
    ),
    APIFault("timeout (no reply)", lambda a, o: h.hang(5), OK, OK, acted=True),
    APIFault(
        "slow drip (1 byte / 50 ms)",
        lambda a, o: h.drip(200, _PREDICTION_TEXT * 20, 0.05),
        OK,
        OK,
        acted=True,
    ),
    APIFault(
        "truncated, no Content-Length",
        lambda a, o: h.truncated(200, _PREDICTION_TEXT, 30, length=False),
        Expect(e.MalformedResponseError, "expected JSON"),
        OK,
        acted=True,
    ),
    APIFault(
        "malformed JSON",
        lambda a, o: h.reply(201, b'{"id": "p1", "status": '),
        Expect(e.MalformedResponseError, "expected JSON"),
        OK,
        acted=True,
    ),
    APIFault(
        "nested past any sense",
        lambda a, o: h.reply(201, b"[" * 100_000 + b"]" * 100_000),
        Expect(e.MalformedResponseError),
        OK,
        acted=True,
    ),
    APIFault(
        "wrong types",
        lambda a, o: h.reply(201, _WRONG_TYPES),
        Expect(e.MalformedResponseError, "not a valid"),
        OK,
        acted=True,
    ),
    APIFault(
        "wrong content type (HTML 200)",
        lambda a, o: h.reply(200, b"<html><body>Welcome!</body></html>", "text/html"),
        Expect(e.MalformedResponseError, "expected JSON"),
        Expect(e.CreateOutcomeUnknownError, "not re-sent"),
    ),
    APIFault(
        "endless reply",
        lambda a, o: h.endless(),
        Expect(e.MalformedResponseError, "max_reply_size"),
        Expect(e.CreateOutcomeUnknownError, "not re-sent"),
        times=100,
    ),
    APIFault(
        "redirect to another origin",
        lambda a, o: h.redirect(o + "/v1/predictions"),
        Expect(e.APIError, "redirected"),
        Expect(e.APIError, "redirected"),
    ),
    APIFault(
        "401 echoing the headers",
        lambda a, o: h.echo(401),
        Expect(e.AuthenticationError),
        Expect(e.AuthenticationError),
        times=100,
    ),
    APIFault(
        "500 HTML echoing the headers",
        lambda a, o: h.echo(500, "text/html"),
        Expect(e.ServerError),
        Expect(e.CreateOutcomeUnknownError),
        times=100,
    ),
]


def _api_cases() -> Iterator[Any]:
    for fault in API_FAULTS:
        for op in OPS:
            expected = fault.create if op == "create" else fault.reads
            yield pytest.param(op, fault, expected, id=f"{op}-{fault.name}")


@pytest.mark.parametrize(("op", "fault", "expected"), list(_api_cases()))
async def test_api_operation_under_fault(
    op: str,
    fault: APIFault,
    expected: Outcome,
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    api = h.MiniAPI()
    async with h.Hostile(api) as server, h.Hostile() as elsewhere:
        if fault.name == "connection refused":
            base = f"http://127.0.0.1:{unused_tcp_port}/v1"
        else:
            base = server.url + "/v1"
            server.fault(fault.behaviour(api, elsewhere.url), times=fault.times)
        async with make_client(base) as client:
            result, error = await outcome_of(OPS[op](client))
            await client._janitor.aclose()
            in_use, _ = client._session.transport.connector_stats()
        check(expected, result, error)
        assert in_use == 0, f"{in_use} connections left in use"
        assert_token_nowhere(error, caplog.records)
        # Never a duplicate: however it went, at most one create reached the server.
        assert len(api.created) <= 1
        if op == "create" and expected == OK:
            assert len(api.created) == 1 and result.id == api.created[0]["id"]
        if isinstance(error, e.CreateOutcomeUnknownError):
            # It looked for what the create may have made before giving up.
            assert "No matching prediction" in str(error) or "Looking for it failed" in str(error)
        # Nothing reaches another origin, least of all the token.
        assert elsewhere.requests == []


# -- streams --------------------------------------------------------------------------------

EVENTS = [("1", "Hello"), ("2", " "), ("3", "world")]
TEXT = "".join(text for _, text in EVENTS)


def _frame(event_id: str, text: str, event: str = "output") -> bytes:
    return f"id: {event_id}\nevent: {event}\ndata: {text}\n\n".encode()


def stream_host() -> h.Behaviour:
    """nchan, briefly: every event after Last-Event-ID, then done."""

    async def behave(request: h.Request, writer: asyncio.StreamWriter) -> None:
        after = request.headers.get("last-event-id")
        ids = [event_id for event_id, _ in EVENTS]
        start = ids.index(after) + 1 if after in ids else 0
        frames = [b": hi\n\n"] + [_frame(i, t) for i, t in EVENTS[start:]]
        frames.append(_frame("4", "{}", "done"))
        await h.sse(frames)(request, writer)

    return behave


def _cut_mid_event() -> h.Behaviour:
    return h.sse([_frame(*EVENTS[0]), _frame(*EVENTS[1])[:9]], end="cut")


def _replays_from_the_start() -> h.Behaviour:
    """Cut after two events; then, ignoring Last-Event-ID, everything again."""
    calls = 0

    async def behave(request: h.Request, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await h.sse([_frame(*EVENTS[0]), _frame(*EVENTS[1])], end="cut")(request, writer)
            return
        frames = [_frame(i, t) for i, t in EVENTS] + [_frame("4", "{}", "done")]
        await h.sse(frames)(request, writer)

    return behave


@attrs.frozen
class StreamFault:
    name: str
    make: Callable[[str], h.Behaviour]  # (another origin's URL)
    expected: Outcome
    times: int = 1


STREAM_FAULTS = [
    StreamFault("connection refused", lambda o: stream_host(), OK),
    StreamFault("reset before the reply", lambda o: h.reset(), OK),
    StreamFault("dropped mid-event", lambda o: _cut_mid_event(), OK),
    StreamFault(
        "dropped, then replayed from the start", lambda o: _replays_from_the_start(), OK, times=2
    ),
    StreamFault("429", lambda o: _throttled("0"), OK),
    StreamFault("500", lambda o: h.reply(500, b"boom", "text/plain"), OK),
    StreamFault("502 HTML page", lambda o: h.reply(502, _PROXY_PAGE, "text/html"), OK),
    StreamFault("503, every time", lambda o: h.reply(503, b"busy", "text/plain"), OK, times=100),
    StreamFault("timeout (no reply)", lambda o: h.hang(5), OK),
    StreamFault("silence after the headers", lambda o: h.sse([b": hi\n\n"], end="hang"), OK),
    StreamFault("comments only, for ever", lambda o: h.comments_for_ever(0.05), OK, times=100),
    StreamFault(
        "slow drip of one event",
        lambda o: h.sse([bytes([b]) for b in b"data: " + b"x" * 400], every=0.01, end="hang"),
        OK,
        times=100,
    ),
    StreamFault(
        "wrong content type (HTML 200)", lambda o: h.reply(200, _PROXY_PAGE, "text/html"), OK
    ),
    StreamFault(
        "a line that never ends",
        lambda o: h.sse([b"data: " + b"x" * (1024 * 1024)] * 3, end="hang"),
        Expect(e.MalformedResponseError, "max_event_size"),
    ),
    StreamFault("redirect to another origin", lambda o: h.redirect(o + "/v1/streams/x"), OK),
    StreamFault(
        "404 (never existed)",
        lambda o: h.reply(404, b"Not Found", "text/plain"),
        Expect(e.NotFoundError),
        times=100,
    ),
]


@pytest.mark.parametrize("fault", STREAM_FAULTS, ids=[f.name for f in STREAM_FAULTS])
async def test_stream_under_fault(
    fault: StreamFault, caplog: pytest.LogCaptureFixture, unused_tcp_port: int
) -> None:
    caplog.set_level(logging.DEBUG)
    async with h.Hostile(stream_host()) as streams, h.Hostile(stream_host()) as elsewhere:
        api = h.MiniAPI(stream_url=streams.url)
        if fault.name == "connection refused":
            api.stream_url = f"http://127.0.0.1:{unused_tcp_port}"
        else:
            streams.fault(fault.make(elsewhere.url), times=fault.times)
        async with h.Hostile(api) as server, make_client(server.url + "/v1") as client:
            policy = attrs.evolve(STREAM_POLICY, max_event_size=512 * 1024)
            stream = client.stream(f"acme/hello:{h.VERSION}", input={"prompt": "hi"}, policy=policy)

            async def collect() -> list[Any]:
                return [event async for event in stream]

            events, error = await outcome_of(collect())
            await client._janitor.aclose()
            in_use, _ = client._session.transport.connector_stats()
        check(fault.expected, events, error)
        if fault.expected == OK:
            # Whole, once, in order: never short, never doubled.
            assert "".join(str(event) for event in events) == TEXT
        assert in_use == 0
        assert_token_nowhere(error, caplog.records)
        for request in streams.requests + elsewhere.requests:
            assert "authorization" not in request.headers


# -- downloads ------------------------------------------------------------------------------

DATA = os.urandom(300_000)


@attrs.frozen
class DownloadFault:
    name: str
    make: Callable[[str], h.Behaviour]  # (another origin's URL)
    save: Outcome
    read: Outcome
    times: int = 1
    normal: Callable[[], h.Behaviour] = lambda: h.file_host(DATA)


_CUT = Expect(e.ConnectionLostError, "without progress")

DOWNLOAD_FAULTS = [
    DownloadFault(
        "connection refused",
        lambda o: h.file_host(DATA),
        Expect(e.ConnectError),
        Expect(e.ConnectError),
    ),
    DownloadFault("reset before the reply", lambda o: h.reset(), OK, OK),
    DownloadFault("reset mid-body", lambda o: h.truncated(200, DATA, 100_000), OK, OK),
    DownloadFault("429", lambda o: _throttled("0"), OK, OK),
    DownloadFault("500", lambda o: h.reply(500, b"boom", "text/plain"), OK, OK),
    DownloadFault("502 HTML page", lambda o: h.reply(502, _PROXY_PAGE, "text/html"), OK, OK),
    DownloadFault("503", lambda o: h.reply(503, b"busy", "text/plain"), OK, OK),
    DownloadFault(
        "503, every time",
        lambda o: h.reply(503, b"busy", "text/plain"),
        Expect(e.ServerError),
        Expect(e.ServerError),
        times=100,
    ),
    DownloadFault(
        "404 (expired)",
        lambda o: h.reply(404, b"Not Found", "text/plain"),
        Expect(e.NotFoundError, "expire"),
        Expect(e.NotFoundError, "expire"),
    ),
    DownloadFault("timeout (no reply)", lambda o: h.hang(5), OK, OK),
    DownloadFault(
        "slow drip", lambda o: h.drip(200, DATA, 0.01, "application/octet-stream"), OK, OK
    ),
    DownloadFault(
        "truncated, no Content-Length",
        lambda o: h.truncated(200, DATA, 100_000, length=False),
        OK,
        OK,
    ),
    DownloadFault(
        "no Content-Length, ended by close",
        lambda o: h.file_host(DATA, length=False),
        OK,
        OK,
        times=100,
    ),
    DownloadFault(
        "chunked, cut before the last chunk",
        lambda o: h.chunked(200, [DATA[:100_000]], final=False, ETag='"v1"'),
        OK,
        OK,
    ),
    DownloadFault(
        "chunked, whole", lambda o: h.chunked(200, [DATA[:150_000], DATA[150_000:]]), OK, OK
    ),
    DownloadFault(
        "cut, then a 200 to the Range, same ETag",
        lambda o: h.truncated(200, DATA, 100_000, ETag='"v1"'),
        OK,
        OK,
        normal=lambda: h.file_host(DATA, ranges=False),
    ),
    DownloadFault(
        "cut, then a 200 to the Range, no validator",
        lambda o: h.truncated(200, DATA, 100_000),
        OK,
        Expect(e.ConnectionLostError, "from the start"),
        normal=lambda: h.file_host(DATA, ranges=False, etag=None),
    ),
    DownloadFault(
        "gzip with the encoded Content-Length",
        lambda o: h.file_host(DATA, gzip_it=True),
        OK,
        OK,
        times=100,
    ),
    DownloadFault("redirect to another origin", lambda o: h.redirect(o + "/file.bin"), OK, OK),
    DownloadFault(
        "cut every time",
        lambda o: h.file_host(DATA, cut_after=1_000),
        _CUT,
        _CUT,
        times=100,
    ),
]


@pytest.mark.parametrize("how", ["save", "read"])
@pytest.mark.parametrize("fault", DOWNLOAD_FAULTS, ids=[f.name for f in DOWNLOAD_FAULTS])
async def test_download_under_fault(
    fault: DownloadFault,
    how: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    unused_tcp_port: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with h.Hostile(fault.normal()) as files, h.Hostile(h.file_host(DATA)) as elsewhere:
        url = files.url + "/file.bin"
        if fault.name == "connection refused":
            url = f"http://127.0.0.1:{unused_tcp_port}/file.bin"
        else:
            files.fault(fault.make(elsewhere.url), times=fault.times)
        async with make_client("http://127.0.0.1:9/v1") as client:
            (output,) = client.output_of(Prediction(id="p1", status="succeeded", output=[url]))
            target = tmp_path / "out.bin"
            if how == "save":
                result, error = await outcome_of(output.save(target))
            else:
                result, error = await outcome_of(output.read())
            in_use, _ = client._session.transport.connector_stats()
        expected = fault.save if how == "save" else fault.read
        check(expected, result, error)
        if how == "save":
            if error is None:
                assert result.size == len(DATA) and h.sha(target.read_bytes()) == h.sha(DATA)
                assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left
            else:
                assert list(tmp_path.iterdir()) == []  # nothing short under any name
        elif error is None:
            assert h.sha(result) == h.sha(DATA)
        assert in_use == 0
        assert_token_nowhere(error, caplog.records)
        for request in files.requests + elsewhere.requests:
            assert "authorization" not in request.headers
            assert request.headers.get("accept-encoding") == "identity"


# -- webhook verification ----------------------------------------------------------------------

SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = b'{"id": "p1", "status": "succeeded"}'


def _signed(body: bytes = BODY, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    import base64
    import hashlib
    import hmac

    stamp = str(int(time.time()) if at is None else at)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"msg_1.{stamp}.".encode() + body, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(mac).decode()
    return {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": signature}


_FORGED = WebhookVerificationError
WEBHOOK_CASES: list[tuple[str, Callable[[], None], Outcome]] = [
    ("genuine", lambda: verify(_signed(), BODY, SECRET), OK),
    ("altered body", lambda: verify(_signed(), BODY + b" ", SECRET), Expect(_FORGED, "no webhook")),
    (
        "signed with another key",
        lambda: verify(_signed(secret="whsec_" + "QUJD" * 8), BODY, SECRET),
        Expect(_FORGED, "no webhook"),
    ),
    (
        "signed with an empty key, checked with an empty secret",
        lambda: verify(_signed(secret="whsec_"), BODY, ""),
        Expect(ValueError, "empty"),
    ),
    (
        "malformed secret",
        lambda: verify(_signed(), BODY, "whsec_not base64!"),
        Expect(ValueError, "malformed"),
    ),
    (
        "tolerance=nan",
        lambda: verify(_signed(), BODY, SECRET, float("nan")),
        Expect(ValueError, "finite"),
    ),
    (
        "tolerance=inf",
        lambda: verify(_signed(), BODY, SECRET, float("inf")),
        Expect(ValueError, "finite"),
    ),
    (
        "replayed (an hour old)",
        lambda: verify(_signed(at=int(time.time()) - 3600), BODY, SECRET),
        Expect(_FORGED, "tolerance"),
    ),
    (
        "timestamp not digits",
        lambda: verify({**_signed(), "webhook-timestamp": " 1_0"}, BODY, SECRET),
        Expect(_FORGED, "not a number"),
    ),
    (
        "missing signature header",
        lambda: verify({"webhook-id": "m", "webhook-timestamp": "1"}, BODY, SECRET),
        Expect(_FORGED, "missing"),
    ),
]


@pytest.mark.parametrize(
    ("name", "call", "expected"), WEBHOOK_CASES, ids=[c[0] for c in WEBHOOK_CASES]
)
def test_webhook_verify_under_fault(name: str, call: Callable[[], None], expected: Outcome) -> None:
    try:
        call()
    except (ValueError, WebhookVerificationError) as error:
        check(expected, None, error)
    else:
        check(expected, None, None)


# -- the table the README shows -------------------------------------------------------------


def _cell(outcome: Outcome) -> str:
    return "retried, succeeded" if outcome == OK else f"`{outcome}`"


def outcome_table() -> str:
    """The fault matrix as Markdown (``python -m tests.e2e.test_faults`` prints it)."""
    lines = [
        "| fault | create | get, list, cancel, upload |",
        "|---|---|---|",
    ]
    for fault in API_FAULTS:
        lines.append(f"| {fault.name} | {_cell(fault.create)} | {_cell(fault.reads)} |")
    lines += ["", "| fault | stream |", "|---|---|"]
    lines += [f"| {f.name} | {_cell(f.expected)} |" for f in STREAM_FAULTS]
    lines += [
        "",
        "| fault | `FileOutput.save()` | `FileOutput.read()` / iteration |",
        "|---|---|---|",
    ]
    lines += [f"| {f.name} | {_cell(f.save)} | {_cell(f.read)} |" for f in DOWNLOAD_FAULTS]
    lines += ["", "| delivery | `webhooks.verify()` |", "|---|---|"]
    lines += [f"| {name} | {'accepted' if x == OK else _cell(x)} |" for name, _, x in WEBHOOK_CASES]
    return "\n".join(lines)


def test_the_readme_shows_this_table() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert outcome_table() in readme, (
        "README.md's fault table is out of date: paste `python -m tests.e2e.test_faults`"
    )


if __name__ == "__main__":
    print(outcome_table())
