"""Errors are built in one place from whatever body the server (or a proxy) sends."""

from __future__ import annotations

import json

import pytest

from replicate_async import errors as e
from tests.conftest import PAYLOADS

URL = "https://api.replicate.com/v1/predictions"


def test_problem_json_401_from_the_real_api() -> None:
    body = (PAYLOADS / "recorded" / "error.401.unauthenticated.json").read_bytes()
    err = e.error_from_response("POST", URL, 401, "Unauthorized", body)
    assert isinstance(err, e.AuthenticationError)
    assert (err.status, err.title) == (401, "Unauthenticated")
    assert err.detail == "You did not pass a valid authentication token"
    assert (err.method, err.url) == ("POST", URL)
    text = str(err)
    assert "POST" in text and URL in text and "401" in text
    assert "REPLICATE_API_TOKEN" in text  # says what to do


def test_problem_without_title_uses_the_reason_phrase() -> None:
    body = (PAYLOADS / "recorded" / "error.404.training-destination.json").read_bytes()
    err = e.error_from_response("POST", URL, 404, "Not Found", body)
    assert isinstance(err, e.NotFoundError)
    assert err.title == "Not Found"
    assert "training destination does not exist" in str(err)


def test_429_carries_retry_after() -> None:
    body = (PAYLOADS / "recorded" / "error.429.throttled.low-credit.json").read_bytes()
    err = e.error_from_response("POST", URL, 429, "Too Many Requests", body, retry_after=5.0)
    assert isinstance(err, e.RateLimitError)
    assert err.retry_after == 5.0
    assert "wait 5 s" in str(err)


def test_proxy_html_502_becomes_a_readable_server_error() -> None:
    body = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1></body></html>"
    err = e.error_from_response("GET", URL, 502, "Bad Gateway", body)
    assert isinstance(err, e.ServerError)
    assert err.detail == "502 Bad Gateway"
    assert "<" not in str(err)


def test_html_without_title_is_stripped_of_tags() -> None:
    err = e.error_from_response("GET", URL, 500, None, b"<p>Oops &amp; sorry</p>")
    assert err.detail == "Oops & sorry"


def test_plain_text_empty_and_broken_json_bodies() -> None:
    assert e.error_from_response("GET", URL, 503, "Unavailable", b"upstream down").detail == (
        "upstream down"
    )
    empty = e.error_from_response("GET", URL, 500, "Internal Server Error", b"")
    assert empty.detail is None and empty.title == "Internal Server Error"
    broken = e.error_from_response("GET", URL, 500, None, b'{"detail": "trunc')
    assert broken.detail == '{"detail": "trunc'


def test_long_bodies_are_truncated() -> None:
    err = e.error_from_response("GET", URL, 500, None, b"x" * 10_000)
    assert err.detail is not None and len(err.detail) <= 500


def test_validation_error_points_at_the_schema() -> None:
    body = json.dumps(
        {"title": "Input validation failed", "detail": "- input: text is required\n", "status": 422}
    ).encode()
    err = e.error_from_response("POST", URL, 422, None, body)
    assert isinstance(err, e.ValidationError)
    assert "openapi_schema" in str(err)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, e.BadRequestError),
        (403, e.PermissionDeniedError),
        (413, e.PayloadTooLargeError),
        (418, e.APIError),
        (500, e.ServerError),
        (504, e.ServerError),
    ],
)
def test_status_to_class(status: int, cls: type[e.APIError]) -> None:
    err = e.error_from_response("GET", URL, status, None, b"")
    assert type(err) is cls
    assert isinstance(err, e.ReplicateError)


def test_wait_timeout_is_also_a_builtin_timeout() -> None:
    assert issubclass(e.WaitTimeoutError, TimeoutError)
    assert issubclass(e.ClientClosedError, RuntimeError)
