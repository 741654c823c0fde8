"""The retry table: what is retried, after how long, and what never is."""

from __future__ import annotations

import pytest

from replicate_async.retry import Failure, RetryPolicy, decide, parse_retry_after

POLICY = RetryPolicy(max_attempts=5, initial_backoff=0.5, max_backoff=8)
S = Failure.STATUS


@pytest.mark.parametrize(
    ("idempotent", "failure", "status", "retried"),
    [
        # reads and cancels: everything transient
        (True, Failure.NOT_SENT, None, True),
        (True, Failure.TIMEOUT, None, True),
        (True, Failure.LOST, None, True),
        (True, S, 429, True),
        (True, S, 500, True),
        (True, S, 502, True),
        (True, S, 503, True),
        (True, S, 504, True),
        (True, S, 501, False),
        (True, S, 400, False),
        (True, S, 401, False),
        (True, S, 404, False),
        (True, S, 422, False),
        # creates: only when the server provably did not act
        (False, Failure.NOT_SENT, None, True),
        (False, S, 429, True),
        (False, Failure.TIMEOUT, None, False),
        (False, Failure.LOST, None, False),
        (False, S, 500, False),
        (False, S, 502, False),
        (False, S, 503, False),
        (False, S, 422, False),
    ],
)
def test_retry_table(idempotent: bool, failure: Failure, status: int | None, retried: bool) -> None:
    delay = decide(
        POLICY,
        idempotent=idempotent,
        failure=failure,
        status=status,
        attempt=1,
        server_delay=None,
        rand=lambda: 0.5,
    )
    assert (delay is not None) is retried


def test_attempts_are_bounded() -> None:
    args = {"idempotent": True, "failure": S, "status": 503, "server_delay": None}
    assert decide(POLICY, attempt=4, **args) is not None  # type: ignore[arg-type]
    assert decide(POLICY, attempt=5, **args) is None  # type: ignore[arg-type]
    assert decide(RetryPolicy.none(), attempt=1, **args) is None  # type: ignore[arg-type]


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    top = [POLICY.backoff(n, rand=lambda: 1.0) for n in range(1, 8)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert POLICY.backoff(3, rand=lambda: 0.0) == 0.0


def test_server_delay_wins_over_backoff_with_a_little_jitter() -> None:
    delay = decide(
        POLICY, idempotent=False, failure=S, status=429, attempt=1, server_delay=7, rand=lambda: 1.0
    )
    assert delay is not None and 7 <= delay <= 8


def test_a_server_delay_too_long_to_wait_gives_up() -> None:
    assert (
        decide(
            POLICY,
            idempotent=True,
            failure=S,
            status=429,
            attempt=1,
            server_delay=POLICY.max_server_delay + 1,
        )
        is None
    )


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
