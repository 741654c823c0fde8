"""The retry table: what is retried, after how long, what never is, and what is unknown."""

from __future__ import annotations

import pytest

from replicate_async import errors as e
from replicate_async.protocol.replies import Failure, Outcome, Response
from replicate_async.protocol.retry import Action, RetryPolicy, backoff, decide

POLICY = RetryPolicy(max_attempts=5, initial_backoff=0.5, max_backoff=8)
S = Failure.STATUS


def outcome(failure: Failure, status: int | None = None, delay: float | None = None) -> Outcome:
    """An Outcome as interpret() would build it for this failure."""
    if failure is S:
        assert status is not None
        reply = Response(status, None, {}, b"", "POST", "https://x/v1/predictions")
        return Outcome(
            reply,
            e.APIError("failed", status=status),
            S,
            server_delay=delay,
            may_have_acted=status >= 500,
        )
    error = {
        Failure.NOT_SENT: e.ConnectError("refused"),
        Failure.TIMEOUT: e.RequestTimeoutError("timeout"),
        Failure.LOST: e.ConnectionLostError("lost"),
    }[failure]
    return Outcome(None, error, failure, may_have_acted=failure is not Failure.NOT_SENT)


@pytest.mark.parametrize(
    ("idempotent", "failure", "status", "action"),
    [
        # reads and cancels: everything transient
        (True, Failure.NOT_SENT, None, Action.RETRY),
        (True, Failure.TIMEOUT, None, Action.RETRY),
        (True, Failure.LOST, None, Action.RETRY),
        (True, S, 429, Action.RETRY),
        (True, S, 500, Action.RETRY),
        (True, S, 502, Action.RETRY),
        (True, S, 503, Action.RETRY),
        (True, S, 504, Action.RETRY),
        (True, S, 501, Action.RAISE),
        (True, S, 400, Action.RAISE),
        (True, S, 401, Action.RAISE),
        (True, S, 404, Action.RAISE),
        (True, S, 422, Action.RAISE),
        # creates: retried only when the server provably did not act...
        (False, Failure.NOT_SENT, None, Action.RETRY),
        (False, S, 429, Action.RETRY),
        (False, S, 422, Action.RAISE),
        # ...and never re-sent when it may have: the outcome is unknown
        (False, Failure.TIMEOUT, None, Action.UNKNOWN),
        (False, Failure.LOST, None, Action.UNKNOWN),
        (False, S, 500, Action.UNKNOWN),
        (False, S, 502, Action.UNKNOWN),
        (False, S, 503, Action.UNKNOWN),
    ],
)
def test_retry_table(
    idempotent: bool, failure: Failure, status: int | None, action: Action
) -> None:
    decision = decide(
        POLICY, outcome(failure, status), idempotent=idempotent, attempt=1, rand=lambda: 0.5
    )
    assert decision.action is action


def test_attempts_are_bounded() -> None:
    busy = outcome(S, 503)
    assert decide(POLICY, busy, idempotent=True, attempt=4).action is Action.RETRY
    assert decide(POLICY, busy, idempotent=True, attempt=5).action is Action.RAISE
    assert decide(RetryPolicy.none(), busy, idempotent=True, attempt=1).action is Action.RAISE
    # a create that ran out of attempts after a 429 was never acted on: a plain raise
    throttled = outcome(S, 429)
    policy = RetryPolicy(max_throttled=2)
    assert decide(policy, throttled, idempotent=False, attempt=2).action is Action.RAISE


def test_the_time_budget_stops_retries_that_would_end_past_it() -> None:
    policy = RetryPolicy(time_budget=10.0)
    busy = outcome(S, 503, delay=4.0)
    assert decide(policy, busy, idempotent=True, attempt=1, elapsed=5.0).action is Action.RETRY
    late = decide(policy, busy, idempotent=True, attempt=1, elapsed=7.0, rand=lambda: 0.0)
    assert late.action is Action.RAISE  # 7 + 4 > 10
    # a create past its budget after a 5xx is still unknown, never retried
    spent = decide(policy, busy, idempotent=False, attempt=1, elapsed=9.0)
    assert spent.action is Action.UNKNOWN
    unlimited = RetryPolicy(time_budget=None)
    far = decide(unlimited, busy, idempotent=True, attempt=1, elapsed=1e9)
    assert far.action is Action.RETRY
    with pytest.raises(ValueError, match="time_budget"):
        RetryPolicy(time_budget=0)


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    top = [backoff(n, initial=0.5, cap=8, rand=lambda: 1.0) for n in range(1, 8)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff(3, initial=0.5, cap=8, rand=lambda: 0.0) == 0.0


def test_server_delay_wins_over_backoff_with_a_little_jitter() -> None:
    assert backoff(5, initial=0.5, cap=8, server_delay=7, rand=lambda: 1.0) == 7.5
    decision = decide(
        POLICY, outcome(S, 429, delay=7), idempotent=False, attempt=1, rand=lambda: 1.0
    )
    assert decision.action is Action.RETRY and 7 <= decision.delay <= 8


def test_a_server_delay_too_long_to_wait_gives_up() -> None:
    long = outcome(S, 429, delay=POLICY.max_server_delay + 1)
    assert decide(POLICY, long, idempotent=True, attempt=1).action is Action.RAISE
