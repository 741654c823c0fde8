"""Pure retry decisions: try again, give up, or say the outcome is unknown; and after how long.

The request loop asks :func:`decide` after each failed attempt and does what it says.
The rules:

- idempotent requests (GET, HEAD, OPTIONS, QUERY, PUT, DELETE, cancels) retry on
  connection errors, timeouts, 429 and 500/502/503/504;
- creates (and every other POST) retry only when the server provably did not act: a
  429, or a connection that was never made. Anything after the bytes left (reset,
  timeout, 5xx) may have created the prediction, and sending it again could run and
  bill the model twice: the decision is then :attr:`Action.UNKNOWN`, never a retry;
- the server's delay (``Retry-After``, a ``retry_after`` field, the 429 detail text)
  wins over computed backoff; otherwise capped exponential backoff with full jitter;
- attempts are bounded: ``max_attempts`` for failures, ``max_throttled`` for 429s (a 429
  is the server pacing us, which the rate limiter answers; it is no failure), and
  ``time_budget`` seconds in all.

:func:`backoff` is the one backoff formula of the library: retries, stream reconnects
and download resumes all wait what it says.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Any

import attrs

from .replies import Failure, Outcome

__all__ = ["Action", "Decision", "RetryPolicy", "backoff", "decide", "is_idempotent"]

Random = Callable[[], float]

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "QUERY", "DELETE", "PUT"})


def is_idempotent(method: str, path: str) -> bool:
    """Whether sending this request twice does no more than sending it once."""
    if method.upper() in _IDEMPOTENT_METHODS:
        return True
    # Cancelling twice cancels once.
    return method.upper() == "POST" and path.rstrip("/").endswith("/cancel")


def backoff(
    attempt: int,
    *,
    initial: float,
    cap: float,
    server_delay: float | None = None,
    rand: Random = random.random,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1).

    The server's own delay wins, with a little jitter on top so that many waiters told
    "1 second" do not all come back at once. Otherwise capped exponential backoff with
    full jitter: anywhere in ``[0, min(cap, initial * 2 ** (attempt - 1))]``.
    """
    if server_delay is not None:
        return server_delay + rand() * min(1.0, initial)
    return min(cap, initial * 2.0 ** (attempt - 1)) * rand()


def _positive_or_none(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be > 0 or None, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to try. ``max_attempts`` counts the first attempt too.

    ``time_budget``: seconds from the first attempt after which no retry starts (None:
    no budget); a retry whose wait would end past it is not made.
    ``recover_creates``: when a create's outcome is unknown (it was sent, then the
    connection failed or the server answered 5xx), look for the prediction it may have
    made (same input, created in that window) before giving up, instead of losing it.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    max_throttled: int = attrs.field(default=12, validator=attrs.validators.ge(1))
    initial_backoff: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    max_backoff: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: a server delay longer than this is not waited for: the error is raised instead
    max_server_delay: float = 120.0
    time_budget: float | None = attrs.field(default=600.0, validator=_positive_or_none)
    recover_creates: bool = True

    @classmethod
    def none(cls) -> RetryPolicy:
        """Never retry or recover: every failure is raised at once."""
        return cls(max_attempts=1, max_throttled=1, recover_creates=False)


class Action(enum.Enum):
    """What the request loop does after a failed attempt."""

    #: wait :attr:`Decision.delay` seconds, then send again
    RETRY = "retry"
    #: raise the attempt's error: the server did not act, or sending again is harmless
    RAISE = "raise"
    #: the request may have been acted on and must not be re-sent: its outcome is unknown
    UNKNOWN = "unknown"


@attrs.frozen
class Decision:
    """The verdict on one failed attempt."""

    action: Action
    delay: float = 0.0


def decide(
    policy: RetryPolicy,
    outcome: Outcome,
    *,
    idempotent: bool,
    attempt: int,
    elapsed: float = 0.0,
    rand: Random = random.random,
) -> Decision:
    """What to do after the failed attempt ``outcome``.

    ``attempt`` counts the attempts so far that failed the same way (429s for a 429,
    other failures otherwise); ``elapsed`` is the seconds since the first attempt.
    """
    if _should_retry(policy, outcome, idempotent=idempotent, attempt=attempt):
        delay = backoff(
            attempt,
            initial=policy.initial_backoff,
            cap=policy.max_backoff,
            server_delay=outcome.server_delay,
            rand=rand,
        )
        if policy.time_budget is None or elapsed + delay <= policy.time_budget:
            return Decision(Action.RETRY, delay)
    if idempotent or not outcome.may_have_acted:
        return Decision(Action.RAISE)
    return Decision(Action.UNKNOWN)


def _should_retry(policy: RetryPolicy, outcome: Outcome, *, idempotent: bool, attempt: int) -> bool:
    limit = policy.max_throttled if outcome.throttled else policy.max_attempts
    if attempt >= limit:
        return False
    if outcome.server_delay is not None and outcome.server_delay > policy.max_server_delay:
        return False
    if outcome.failure is Failure.STATUS:
        if outcome.status not in _RETRYABLE_STATUSES:
            return False
        # A 429 means the server refused before doing anything: safe even for a create.
        return idempotent or outcome.throttled
    # A transport failure: safe to repeat if the request never left, or is idempotent.
    return idempotent or outcome.failure is Failure.NOT_SENT
