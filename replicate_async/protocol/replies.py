"""What one attempt's result means, decided once: :func:`interpret` turns it into an Outcome.

The request loop asks three questions of every attempt: what to hand back (a reply or
an error), what the rate limiter should learn (the server's delay, a limit it stated,
the budget it has left), and whether the server may have acted on the request. The
answers come from here, once, as an :class:`Outcome`; the limiter and the retry policy
read the same Outcome instead of each parsing the reply again (gidgethub's
``sansio.decipher_response`` is the model).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import attrs

from ..errors import (
    APIError,
    ConnectError,
    ReplicateError,
    RequestTimeoutError,
    TransportError,
    error_from_problem,
    parse_problem,
)

__all__ = [
    "Failure",
    "Outcome",
    "Response",
    "interpret",
    "parse_retry_after",
    "parse_stated_limit",
]


@attrs.frozen
class Response:
    """A reply read whole: status, headers and body bytes, and the request it answers.

    ``headers`` is case-insensitive (aiohttp's multidict); its keys are read lower-case.
    """

    status: int
    reason: str | None
    headers: Mapping[str, str]
    body: bytes
    method: str
    url: str


class Failure(enum.Enum):
    """How an attempt failed, as far as retrying cares."""

    #: could not connect (refused, DNS, connect timeout): the request never left
    NOT_SENT = "not-sent"
    #: timed out waiting for the reply: the server may have acted
    TIMEOUT = "timeout"
    #: the connection broke after sending, or the reply made no sense: it may have acted
    LOST = "lost"
    #: the server answered with an error status
    STATUS = "status"


class Outcome(NamedTuple):
    """Everything the request loop needs to know about one attempt.

    (A named tuple, not a frozen attrs class: one is built per request, and this is
    half the cost.)
    """

    #: the reply, when the server answered at all
    reply: Response | None
    #: the error to raise if this is the last attempt; None when the reply is a success
    error: ReplicateError | None = None
    failure: Failure | None = None
    #: seconds the server asked us to wait (Retry-After, ``retry_after``, the 429 text)
    server_delay: float | None = None
    #: ``(per_minute, burst)`` when a 429 stated the account's limit in words
    stated_limit: tuple[float, float | None] | None = None
    #: the server's ``ratelimit-remaining``: requests it will still take now
    remaining: float | None = None
    #: False only when the server provably did nothing: never sent, 429, or refused (4xx)
    may_have_acted: bool = True

    @property
    def ok(self) -> bool:
        """The server answered with a success status."""
        return self.error is None

    @property
    def status(self) -> int | None:
        """The reply's status, None when there was no reply."""
        return None if self.reply is None else self.reply.status

    @property
    def throttled(self) -> bool:
        """A 429: the server is pacing us (the limiter answers that, not the retry count)."""
        return self.reply is not None and self.reply.status == 429


def interpret(result: Response | TransportError, *, now: float) -> Outcome:
    """Decide what one attempt's reply (or transport failure) means.

    ``now`` is the Unix time, to read a ``Retry-After`` given as an HTTP date. The error
    body is parsed once, here, and the error built once from it.
    """
    if isinstance(result, TransportError):
        if isinstance(result, ConnectError):
            return Outcome(None, result, Failure.NOT_SENT, may_have_acted=False)
        failure = Failure.TIMEOUT if isinstance(result, RequestTimeoutError) else Failure.LOST
        return Outcome(None, result, failure)
    remaining = _remaining(result.headers)
    status = result.status
    if 300 <= status < 400:
        # Never followed: the token would go wherever it points. Nothing was done.
        where = result.headers.get("Location", "")[:200]
        moved = APIError(
            f"{result.method} {result.url}: the server redirected ({status}) to {where!r}; "
            "API requests are not followed elsewhere (the token would go along). Check "
            "base_url.",
            status=status,
            method=result.method,
            url=result.url,
        )
        return Outcome(result, moved, Failure.STATUS, remaining=remaining, may_have_acted=False)
    if status < 400:
        return Outcome(result, remaining=remaining)
    parsed, title, detail = parse_problem(result.body)
    delay = parse_retry_after(result.headers, parsed, now=now)
    error = error_from_problem(
        result.method,
        result.url,
        status,
        title or result.reason or None,
        detail,
        parsed,
        retry_after=delay,
    )
    return Outcome(
        result,
        error,
        Failure.STATUS,
        server_delay=delay,
        stated_limit=parse_stated_limit(detail) if status == 429 else None,
        remaining=remaining,
        # A 4xx is the server refusing before doing anything; a 5xx may come after the work.
        may_have_acted=status >= 500,
    )


def _remaining(headers: Mapping[str, str]) -> float | None:
    value = headers.get("ratelimit-remaining")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


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
    429 detail text Replicate sends. A value that is no finite number (``inf``, ``nan``)
    is no delay at all; how long is too long is the retry policy's and the limiter's
    call (both cap it).
    """
    delay = _retry_after(headers, body, now)
    if delay is None or not math.isfinite(delay):
        return None
    return max(0.0, delay)


def _retry_after(headers: Mapping[str, str], body: Any, now: float | None) -> float | None:
    header = headers.get("Retry-After") or headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return float(header)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and now is not None:
            return when - now
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        detail = body.get("detail")
        if isinstance(detail, str):
            for pattern in _DETAIL_PATTERNS:
                match = pattern.search(detail)
                if match:
                    return float(match.group(1))
    return None


_STATED_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*requests? per minute", re.IGNORECASE)
_STATED_BURST = re.compile(r"burst of\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_stated_limit(detail: str | None) -> tuple[float, float | None] | None:
    """``(per_minute, burst)`` from a 429 detail that states the limit, else None.

    Replicate says so when it lowers an account's limit: "Your rate limit for creating
    predictions is reduced to 6 requests per minute with a burst of 1 requests ...".
    """
    if not detail:
        return None
    rate = _STATED_RATE.search(detail)
    if rate is None:
        return None
    per_minute = float(rate.group(1))
    if not (math.isfinite(per_minute) and per_minute > 0):
        return None  # "0 requests per minute", or digits past any float: not a limit to adopt
    burst = _STATED_BURST.search(detail)
    size = float(burst.group(1)) if burst else None
    if size is not None and not (math.isfinite(size) and size >= 1):
        size = None
    return per_minute, size
