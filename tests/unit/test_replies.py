"""interpret(): what a reply or a transport failure means, decided once, without a network."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from replicate_async import errors as e
from replicate_async.protocol.replies import (
    Failure,
    Response,
    interpret,
    parse_retry_after,
    parse_stated_limit,
)
from tests.conftest import PAYLOADS

URL = "https://api.replicate.com/v1/predictions"


def reply(status: int, body: bytes = b"", **headers: str) -> Response:
    return Response(status, None, CIMultiDict(headers), body, "POST", URL)


def test_a_success_carries_the_servers_remaining_budget() -> None:
    out = interpret(reply(201, b"{}", **{"ratelimit-remaining": "599"}), now=0)
    assert out.ok and out.error is None and out.failure is None
    assert out.remaining == 599.0 and out.may_have_acted and not out.throttled
    assert interpret(reply(200, **{"ratelimit-remaining": "lots"}), now=0).remaining is None


def test_a_429_is_throttled_not_acted_on_and_says_how_long() -> None:
    body = json.dumps({"detail": "Request was throttled. Expected available in 2 seconds."})
    out = interpret(reply(429, body.encode(), **{"ratelimit-remaining": "0"}), now=0)
    assert out.throttled and not out.may_have_acted and out.failure is Failure.STATUS
    assert out.server_delay == 2.0 and out.stated_limit is None and out.remaining == 0.0
    assert isinstance(out.error, e.RateLimitError) and out.error.retry_after == 2.0
    assert "wait 2 s" in str(out.error)


def test_a_429_that_states_the_limit() -> None:
    body = (PAYLOADS / "recorded" / "error.429.throttled.low-credit.json").read_bytes()
    out = interpret(reply(429, body), now=0)
    assert out.stated_limit == (6.0, 1.0)
    assert out.error is not None and "reduced to 6 requests per minute" in str(out.error)


@pytest.mark.parametrize(("status", "acted"), [(400, False), (404, False), (422, False)])
def test_a_4xx_was_refused(status: int, acted: bool) -> None:
    out = interpret(reply(status, b'{"detail": "no", "status": %d}' % status), now=0)
    assert out.may_have_acted is acted and out.error is not None and out.error.detail == "no"


def test_a_5xx_may_have_acted_and_a_proxy_page_is_one_line() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>...</body></html>"
    out = interpret(reply(502, page), now=0)
    assert out.may_have_acted and isinstance(out.error, e.ServerError)
    assert out.error.detail == "502 Bad Gateway"


@pytest.mark.parametrize(
    ("error", "failure", "acted"),
    [
        (e.ConnectError("refused"), Failure.NOT_SENT, False),
        (e.RequestTimeoutError("slow"), Failure.TIMEOUT, True),
        (e.ConnectionLostError("reset"), Failure.LOST, True),
        (e.MalformedResponseError("garbage"), Failure.LOST, True),
    ],
)
def test_transport_failures(error: e.TransportError, failure: Failure, acted: bool) -> None:
    out = interpret(error, now=0)
    assert out.reply is None and out.error is error
    assert out.failure is failure and out.may_have_acted is acted


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "3"}, None, 3.0),
        ({"retry-after": "1.5"}, {"retry_after": 9}, 1.5),  # header first
        ({}, {"retry_after": 5, "detail": "resets in ~30s"}, 5.0),  # field before text
        ({}, {"detail": "Request was throttled. Expected available in 1 second."}, 1.0),
        ({}, {"detail": "Request was throttled. Expected available in 12 seconds."}, 12.0),
        ({}, {"detail": "Request was throttled. Your rate limit resets in ~30s."}, 30.0),
        ({}, {"detail": "slow down"}, None),
        ({}, None, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT"}, None, 5.0),
        ({"Retry-After": "soon"}, None, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], body: object, expected: float | None) -> None:
    now = 1445412480.0  # 07:28:00 on that date
    assert parse_retry_after(headers, body, now=now) == expected


@pytest.mark.parametrize(
    "detail",
    [
        "Request was throttled. Expected available in 1 second.",
        "Request was throttled. Your rate limit resets in ~30s.",
        None,
    ],
)
def test_most_429s_state_no_limit(detail: str | None) -> None:
    assert parse_stated_limit(detail) is None
