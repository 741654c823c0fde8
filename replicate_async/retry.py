"""Pure retry decisions: is this failure worth another attempt, and after how long.

No I/O here: the request path in ``client.py`` asks :func:`decide` after each failed
attempt and sleeps what it says. The rules:

- idempotent requests (GET, QUERY, DELETE, cancels) retry on connection errors,
  timeouts, 429 and 500/502/503/504;
- creates (and every other POST) retry only when the server provably did not act: a
  429, or a connection that was never made. Anything after the bytes left (reset,
  timeout, 5xx) may have created the prediction, and sending it again could run and
  bill the model twice;
- the server's delay (``Retry-After``, a ``retry_after`` field, the 429 detail text)
  wins over computed backoff; otherwise capped exponential backoff with full jitter;
- attempts are bounded: ``max_attempts`` for failures, ``max_throttled`` for 429s (a 429
  is the server pacing us, which the rate limiter answers; it is no failure).
"""

from __future__ import annotations

import enum
import random
import re
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import attrs

__all__ = ["Failure", "RetryPolicy", "decide", "is_idempotent", "parse_retry_after"]


class Failure(enum.Enum):
    """How an attempt failed, as far as retrying cares."""

    #: could not connect (refused, DNS, connect timeout): the request never left
    NOT_SENT = "not-sent"
    #: timed out waiting for the reply: the server may have acted
    TIMEOUT = "timeout"
    #: the connection broke after sending: the server may have acted
    LOST = "lost"
    #: the server answered with an error status (see ``status``)
    STATUS = "status"


_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "QUERY", "DELETE", "PUT"})


def is_idempotent(method: str, path: str) -> bool:
    """Whether sending this request twice does no more than sending it once."""
    if method.upper() in _IDEMPOTENT_METHODS:
        return True
    # Cancelling twice cancels once.
    return method.upper() == "POST" and path.rstrip("/").endswith("/cancel")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to try. ``max_attempts`` counts the first attempt too.

    ``recover_creates``: when a create's outcome is unknown (it was sent, then the
    connection failed or the server answered 5xx), look for the prediction it may have
    made (same input, created in that window) before giving up, instead of losing it.
    """

    max_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    max_throttled: int = attrs.field(default=12, validator=attrs.validators.ge(1))
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    #: a server delay longer than this is not waited for: the error is raised instead
    max_server_delay: float = 120.0
    recover_creates: bool = True

    @classmethod
    def none(cls) -> RetryPolicy:
        """Never retry or recover: every failure is raised at once."""
        return cls(max_attempts=1, max_throttled=1, recover_creates=False)

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full-jitter backoff before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        return ceiling * rand()


def decide(
    policy: RetryPolicy,
    *,
    idempotent: bool,
    failure: Failure,
    status: int | None,
    attempt: int,
    server_delay: float | None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before trying again, or None to give up and raise.

    ``attempt`` counts the attempts so far that failed this way: 429s for a 429, other
    failures otherwise.
    """
    throttled = failure is Failure.STATUS and status == 429
    if attempt >= (policy.max_throttled if throttled else policy.max_attempts):
        return None
    if failure is Failure.STATUS:
        if status not in _RETRYABLE_STATUSES:
            return None
        # A 429 means the server refused before doing anything: safe even for a create.
        if not idempotent and not throttled:
            return None
    elif not idempotent and failure is not Failure.NOT_SENT:
        return None
    if server_delay is not None:
        if server_delay > policy.max_server_delay:
            return None
        # A little jitter on top, so many waiters told "1 second" do not all come back at once.
        return server_delay + rand() * min(1.0, policy.initial_backoff)
    return policy.backoff(attempt, rand)


_DETAIL_PATTERNS = (
    # "Request was throttled. Expected available in 1 second."
    re.compile(r"available in\s+~?(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE),
    # "Your rate limit resets in ~30s."
    re.compile(r"resets in\s+~?(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE),
)


def parse_retry_after(
    headers: Mapping[str, str], body: Any, now: float | None = None
) -> float | None:
    """The server's requested delay in seconds, from the best source present.

    In order: the ``Retry-After`` header (seconds or an HTTP date, ``now`` being the
    current Unix time), a ``retry_after`` field in the JSON body, then the numbers in the
    429 detail text Replicate sends.
    """
    header = headers.get("Retry-After") or headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and now is not None:
            return max(0.0, when - now)
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return max(0.0, float(value))
        detail = body.get("detail")
        if isinstance(detail, str):
            for pattern in _DETAIL_PATTERNS:
                match = pattern.search(detail)
                if match:
                    return float(match.group(1))
    return None
