"""Fuzzing the edges: whatever a server (or a caller) sends, only documented errors escape.

Each parser at the library's edge is given what hypothesis makes of real payloads
(keys dropped or added, values of the wrong type, huge strings, odd unicode) or of
free text, and must either succeed or raise the one error its docs name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicate_async import errors as e
from replicate_async._session import Session
from replicate_async._transport import Response
from replicate_async.files import decode_data_uri
from replicate_async.protocol.refs import parse_ref
from replicate_async.protocol.replies import interpret, parse_retry_after, parse_stated_limit
from replicate_async.protocol.sse import EventTooLarge, SSEDecoder
from replicate_async.types import (
    Collection,
    File,
    Model,
    Page,
    Prediction,
    Training,
    Version,
)
from replicate_async.webhooks import WebhookVerificationError, verify
from tests.conftest import PAYLOADS

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- mutated real payloads ----------------------------------------------------------------

_KINDS: list[tuple[str, Any]] = [
    ("prediction.", Prediction),
    ("models.predictions.", Prediction),
    ("training.", Training),
    ("model.get", Model),
    ("version.get", Version),
    ("file.", File),
    ("collection.get", Collection),
    ("models.list", Page[Model]),
    ("files.list", Page[File]),
]


def _payloads() -> Iterator[tuple[str, Any, Any]]:
    for path in sorted((PAYLOADS / "recorded").glob("*.json")):
        for prefix, cls in _KINDS:
            if path.name.startswith(prefix):
                data = json.loads(path.read_text())
                yield path.name, cls, data


PAYLOAD_LIST = list(_payloads())

_odd_text = st.one_of(
    st.text(max_size=40),
    st.just("\ud800"),  # a lone surrogate, as json.loads lets through
    st.just("\u202e\u0000\ufeff"),
    st.just("x" * 200_000),
)
_json_value: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        _odd_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _paths(item, (*prefix, index))


def _mutate(data: Any, path: tuple[Any, ...], how: str, new: Any) -> Any:
    if not path:
        return new if how != "drop" else {}
    head, rest = path[0], path[1:]
    copy: Any = dict(data) if isinstance(data, dict) else list(data)
    if rest:
        copy[head] = _mutate(copy[head], rest, how, new)
    elif how == "drop" and isinstance(copy, dict):
        del copy[head]
    elif how == "add" and isinstance(copy, dict):
        copy[f"{head}_new"] = new
    else:
        copy[head] = new
    return copy


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any, Any]:
    name, cls, data = draw(st.sampled_from(PAYLOAD_LIST))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(data))))
        how = draw(st.sampled_from(["drop", "add", "replace"]))
        data = _mutate(data, path, how, draw(_json_value))
    return name, cls, data


@pytest.fixture(scope="module")
def session() -> Session:
    from replicate_async import AsyncReplicate

    return AsyncReplicate(api_token="r8_fuzz", base_url="http://127.0.0.1:9/v1")._session


def _reply(body: bytes) -> Response:
    return Response(200, "OK", {}, body, "GET", "http://127.0.0.1:9/v1/x")


def test_every_payload_kind_has_real_examples() -> None:
    kinds = {cls for _, cls, _ in PAYLOAD_LIST}
    assert len(kinds) == len({cls for _, cls in _KINDS})


@FUZZ
@given(case=mutated())
def test_mutated_payloads_decode_or_raise_malformed(
    session: Session, case: tuple[str, Any, Any]
) -> None:
    _, cls, data = case
    try:
        body = json.dumps(data, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        return
    try:
        session.decode(_reply(body), cls)
    except e.MalformedResponseError as caught:
        error = caught
    else:
        return
    assert error.__cause__ is None and error.__context__ is None
    assert "not a valid" in str(error) or "expected JSON" in str(error)


@FUZZ
@given(body=st.binary(max_size=200))
def test_any_bytes_decode_or_raise_malformed(session: Session, body: bytes) -> None:
    try:
        session.decode(_reply(body), Prediction)
    except e.MalformedResponseError:
        pass


def test_deep_nesting_is_malformed_not_a_recursion_error(session: Session) -> None:
    for body in (b"[" * 200_000 + b"]" * 200_000, b'{"id": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        with pytest.raises(e.MalformedResponseError):
            session.decode(_reply(body), Prediction)


def test_values_are_never_coerced(session: Session) -> None:
    for field, value in [("id", None), ("status", False), ("created_at", True), ("id", 42)]:
        body = json.dumps({"id": "p1", "status": "starting", field: value}).encode()
        with pytest.raises(e.MalformedResponseError, match=field):
            session.decode(_reply(body), Prediction)


# -- error replies --------------------------------------------------------------------------


@FUZZ
@given(
    status=st.integers(100, 599),
    body=st.one_of(st.binary(max_size=300), _json_value.map(lambda v: json.dumps(v).encode())),
    retry_after=st.one_of(st.none(), st.text(max_size=30), st.sampled_from(["inf", "1e999", "-1"])),
)
def test_any_reply_is_interpreted(status: int, body: bytes, retry_after: str | None) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    outcome = interpret(Response(status, None, headers, body, "GET", "http://h/x"), now=1e9)
    delay = outcome.server_delay
    assert delay is None or (math.isfinite(delay) and delay >= 0)
    if status >= 300:
        assert isinstance(outcome.error, e.APIError)
    if outcome.stated_limit is not None:
        rate, burst = outcome.stated_limit
        assert math.isfinite(rate) and rate > 0
        assert burst is None or (math.isfinite(burst) and burst >= 1)


def test_an_error_body_nested_past_any_sense_is_still_an_api_error() -> None:
    for body in (b"[" * 200_000, b'{"detail": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        outcome = interpret(Response(500, None, {}, body, "GET", "http://h/x"), now=1e9)
        assert isinstance(outcome.error, e.ServerError)
        assert len(str(outcome.error)) < 2000


@FUZZ
@given(
    header=st.one_of(st.text(max_size=40), st.floats().map(str), st.integers().map(str)),
    detail=st.text(max_size=80),
    field=_json_value,
)
def test_retry_after_is_none_or_a_finite_delay(header: str, detail: str, field: Any) -> None:
    for headers, body in [
        ({"Retry-After": header}, None),
        ({}, {"detail": detail}),
        ({}, {"retry_after": field}),
        ({}, {"detail": f"Expected available in {header} seconds"}),
    ]:
        delay = parse_retry_after(headers, body, now=1e9)
        assert delay is None or (math.isfinite(delay) and delay >= 0)


@FUZZ
@given(st.one_of(st.text(max_size=100), st.integers(0, 10**400).map(str)))
def test_stated_limits_are_sane_numbers(number: str) -> None:
    texts = [
        number,
        f"Your rate limit for creating predictions is reduced to {number} requests per "
        f"minute with a burst of {number} requests",
    ]
    for text in texts:
        limit = parse_stated_limit(text)
        if limit is not None:
            rate, burst = limit
            assert math.isfinite(rate) and rate > 0
            assert burst is None or (math.isfinite(burst) and burst >= 1)


# -- the SSE decoder ------------------------------------------------------------------------


@FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=20), cap=st.integers(16, 4096))
def test_sse_decoder_takes_any_bytes(chunks: list[bytes], cap: int) -> None:
    decoder = SSEDecoder(max_event_size=cap)
    for chunk in chunks:
        try:
            for event in decoder.feed(chunk):
                assert len(event.data) <= cap + 1
        except EventTooLarge:
            pass  # the one documented error; the decoder goes on after it
    assert isinstance(decoder.last_event_id, str)


# -- webhooks ---------------------------------------------------------------------------------

_header_text = st.text(max_size=60)


@FUZZ
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["webhook-id", "webhook-timestamp", "webhook-signature", "Webhook-Id", "x"]
        ),
        _header_text,
        max_size=4,
    ),
    body=st.one_of(st.binary(max_size=100), st.text(max_size=100)),
    secret=st.one_of(
        st.text(max_size=50),
        st.just(""),
        st.just("whsec_"),
        st.just("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
    ),
    tolerance=st.one_of(st.none(), st.floats(), st.integers(-5, 10**6)),
)
def test_verify_only_raises_its_documented_errors(
    headers: dict[str, str], body: bytes | str, secret: str, tolerance: float | None
) -> None:
    try:
        verify(headers, body, secret, tolerance)
    except (WebhookVerificationError, ValueError):
        pass
    else:
        raise AssertionError("a fuzzed delivery verified")


# -- model references and data URIs ------------------------------------------------------------


@FUZZ
@given(
    ref=st.one_of(
        st.text(max_size=120),
        st.from_regex(r"[a-z0-9_.-]{0,12}/[a-z0-9_.-]{0,12}(:[0-9a-f]{0,70})?"),
    )
)
def test_parse_ref_raises_only_value_error(ref: str) -> None:
    try:
        target = parse_ref(ref)
    except ValueError as error:
        message = str(error)
        assert message  # says what it wanted
    else:
        assert target.path.startswith("/")


@FUZZ
@given(
    uri=st.one_of(
        st.text(max_size=80).map(lambda t: "data:" + t),
        st.text(max_size=40).map(lambda t: "data:image/png;base64," + t),
    )
)
def test_data_uris_decode_or_raise_value_error(uri: str) -> None:
    try:
        kind, data = decode_data_uri(uri)
    except ValueError as error:
        message = str(error)
        assert "data: URI" in message
    else:
        assert isinstance(kind, str) and isinstance(data, bytes)


def test_fixtures_are_here() -> None:
    assert Path(PAYLOADS / "recorded").is_dir()
