"""The error tree, and the one place that turns an HTTP reply into an error.

::

    ReplicateError                      every error this library raises
    ├── APIError                        the server answered with an error status
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401 (also: no token configured, before any request)
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404
    │   ├── PayloadTooLargeError        413 (also: a file input over the limit, before sending)
    │   ├── ValidationError             422
    │   ├── RateLimitError              429, with ``retry_after``
    │   └── ServerError                 5xx
    ├── TransportError                  no usable reply
    │   ├── ConnectError                could not connect: the request was never sent
    │   ├── RequestTimeoutError         timed out (the request may have been acted on)
    │   ├── ConnectionLostError         connection dropped after sending
    │   └── MalformedResponseError      a 2xx reply whose body is not what the API sends
    ├── CreateOutcomeUnknownError       a create failed after it was sent (reset, timeout,
    │                                   5xx): it may exist, so it was not re-sent
    ├── PredictionError                 a prediction ended badly; ``.prediction`` has it
    │   ├── PredictionFailed            status ``failed``
    │   └── PredictionCanceled          status ``canceled`` or ``aborted``
    ├── UnknownStatusError              the server reported a status this client does not know
    ├── WaitTimeoutError                ``wait(timeout=...)`` ran out (also a ``TimeoutError``)
    └── ClientClosedError               the client was closed, or used from another event loop

Every error carries ``status``, ``title``, ``detail``, ``method`` and ``url`` (``None`` where
they do not apply). None of them ever holds the API token: requests carry it only in a
header, headers are never copied into an error, and a server (or a proxy's error page)
that echoes the request back cannot smuggle it in either: every error scrubs the tokens
of this process's clients from all it holds, when it is built (:func:`keep_secret`).
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from .types import Status

if TYPE_CHECKING:
    from .types import Prediction

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConnectError",
    "ConnectionLostError",
    "CreateOutcomeUnknownError",
    "InputValidationError",
    "MalformedResponseError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PredictionCanceled",
    "PredictionError",
    "PredictionFailed",
    "RateLimitError",
    "ReplicateError",
    "RequestTimeoutError",
    "ServerError",
    "SharedLimiterError",
    "TransportError",
    "UnknownStatusError",
    "ValidationError",
    "WaitTimeoutError",
    "error_from_problem",
    "error_from_response",
    "keep_secret",
    "parse_problem",
    "prediction_error",
]

TOKEN_HELP = (
    "Pass api_token=... to AsyncReplicate or set the REPLICATE_API_TOKEN environment variable "
    "(create a token at https://replicate.com/account/api-tokens)."
)


#: the API tokens of this process's clients: scrubbed from every error when it is built.
#: The one process-wide state of the library, on purpose: redaction at each place
#: where a server's words enter an error would leak the token at the place forgotten.
_SECRETS: set[str] = set()
_REDACTED = "r8_…(redacted)"


def keep_secret(token: str | None) -> None:
    """Keep ``token`` out of every error from now on (clients call this with theirs)."""
    if token and len(token) >= 8:  # a short string would be scrubbed from everything
        _SECRETS.add(token)


def redact(value: Any) -> Any:
    """``value`` with every kept secret replaced, in strings at any depth of lists/dicts."""
    if not _SECRETS:
        return value
    if isinstance(value, str):
        for secret in _SECRETS:
            if secret in value:
                value = value.replace(secret, _REDACTED)
        return value
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, dict):
        return {redact(key): redact(item) for key, item in value.items()}
    return value


class ReplicateError(Exception):
    """Base class of every error raised by replicate_async."""

    status: int | None
    title: str | None
    detail: str | None
    method: str | None
    url: str | None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        title: str | None = None,
        detail: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.title = redact(title)
        self.detail = redact(detail)
        self.method = method
        self.url = redact(url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class APIError(ReplicateError):
    """The API answered with an error status; ``body`` is its parsed problem document."""

    body: Any

    def __init__(self, message: str, *, body: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.body = redact(body)


class BadRequestError(APIError):
    """400: the request was malformed."""


class AuthenticationError(APIError):
    """401, or no API token configured at all (then ``status`` is None and nothing was sent)."""


class PermissionDeniedError(APIError):
    """403: the token may not do this."""


class NotFoundError(APIError):
    """404: no such model, version, deployment, prediction or page."""


class PayloadTooLargeError(APIError):
    """413: a body (usually a file upload) is over the server's limit."""


class ValidationError(APIError):
    """422: the input or the target does not validate."""


class SharedLimiterError(ReplicateError):
    """Redis, which holds the shared rate limits, did not answer (``on_error="raise"``).

    Nothing was sent. Check that Redis is up and reachable, or use ``on_error="local"``
    to go on with a local share of the limits while it is away.
    """


class InputValidationError(ValidationError):
    """The input breaks the model's schema, found before any request (``client.use``).

    ``problems`` lists each bad field and what it takes; the message lists them all.
    """

    problems: list[Any]

    def __init__(self, message: str, *, problems: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.problems = list(problems or [])

    @classmethod
    def of(cls, label: str, problems: list[Any]) -> InputValidationError:
        """The error for ``problems`` (each with ``field`` and ``message``) of ``label``."""
        count = len(problems)
        lines = "\n".join(f"  - {p.field}: {p.message}" for p in problems)
        noun = "input is" if count == 1 else "inputs are"
        return cls(
            f"{count} {noun} not what {label} takes (checked against its schema; nothing "
            f"was sent):\n{lines}\nPass validate=False to send it anyway.",
            problems=problems,
        )


class RateLimitError(APIError):
    """429: throttled. ``retry_after`` is the server's hint in seconds, if it gave one."""

    retry_after: float | None

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: Replicate (or a proxy in front of it) failed."""


class TransportError(ReplicateError):
    """No usable reply: the connection failed, timed out, or the body made no sense."""


class ConnectError(TransportError):
    """Could not connect. The request was never sent, so it is always safe to send again."""


class RequestTimeoutError(TransportError):
    """The request timed out. If it was sent, the server may have acted on it."""


class ConnectionLostError(TransportError):
    """The connection dropped after the request was sent."""


class MalformedResponseError(TransportError):
    """A successful status with a body that is not what the API sends (bad JSON, HTML...)."""


class CreateOutcomeUnknownError(ReplicateError):
    """A create failed after it was sent: the prediction may exist.

    It is never re-sent automatically, because that could run (and bill) the model twice.
    ``sent_after`` and ``sent_before`` bound when it was sent, to look for it with
    ``client.predictions.list(created_after=...)`` before creating it again; ``status``
    is the server's 5xx when there was one, None when the connection failed. Its cause
    (``__cause__``) is the transport or server error.
    """

    def __init__(
        self, message: str, *, sent_after: Any = None, sent_before: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.sent_after = sent_after
        self.sent_before = sent_before

    @classmethod
    def after(
        cls,
        cause: ReplicateError,
        *,
        sent_after: datetime,
        sent_before: datetime,
        looked: bool = False,
        lookup_error: ReplicateError | None = None,
        created: bool = False,
    ) -> CreateOutcomeUnknownError:
        """The error for a create that failed with ``cause`` after it was sent.

        ``looked``: the client already searched ``predictions.list()`` and found nothing;
        ``lookup_error``: it tried to, and the search failed this way. ``created``: the
        server said it created it (2xx), but its reply could not be read.
        """
        if created:
            what = (
                f"{cause.message} The server answered that it created it, so it exists; "
                "it was not re-sent, to avoid running the model twice."
            )
        else:
            what = (
                f"{cause.message} The request was sent, so what it creates may exist; it was "
                "not re-sent, to avoid running the model twice."
            )
        message = (
            f"{what} Look for it with client.predictions.list(created_after=...) (sent between "
            f"{sent_after.isoformat()} and {sent_before.isoformat()}) before creating it again."
        )
        if looked and not created:
            message += (
                " No matching prediction was found in predictions.list(), so it was "
                "probably not created; it was still not re-sent, to be safe."
            )
        elif looked:
            message += " No matching prediction turned up in predictions.list() yet."
        if lookup_error is not None:
            message += f" Looking for it failed too: {lookup_error.message}"
        return cls(
            message,
            status=cause.status,
            title=cause.title,
            detail=cause.detail,
            method=cause.method,
            url=cause.url,
            sent_after=sent_after,
            sent_before=sent_before,
        )


class PredictionError(ReplicateError):
    """A prediction reached a bad terminal state; ``prediction`` is its last snapshot."""

    def __init__(self, message: str, *, prediction: Prediction, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.prediction = _redacted_prediction(prediction)


def _redacted_prediction(prediction: Prediction) -> Prediction:
    """The snapshot with the server's free text (error, logs) scrubbed, if need be."""
    error, logs = redact(prediction.error), redact(prediction.logs)
    if error == prediction.error and logs == prediction.logs:
        return prediction
    return attrs.evolve(prediction, error=error, logs=logs)


class PredictionFailed(PredictionError):
    """The prediction's status is ``failed``: the model raised. Its error and logs are here."""


class PredictionCanceled(PredictionError):
    """The prediction was ``canceled`` (by a cancel call) or ``aborted`` (never started)."""


class UnknownStatusError(ReplicateError):
    """The server reported a prediction status this client does not know.

    Raised instead of polling forever. ``prediction`` is the snapshot that carried it.
    """

    def __init__(self, message: str, *, prediction: Prediction, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.prediction = _redacted_prediction(prediction)


class WaitTimeoutError(ReplicateError, TimeoutError):
    """Waiting for a prediction took longer than the timeout given. It keeps running."""

    def __init__(self, message: str, *, prediction: Prediction, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.prediction = _redacted_prediction(prediction)


class ClientClosedError(ReplicateError, RuntimeError):
    """The client is closed, or is being used from an event loop other than its own."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitError,
}

_HINTS: dict[type[APIError], str] = {
    AuthenticationError: "Check your API token. " + TOKEN_HELP,
    PermissionDeniedError: "Your token is valid but may not do this; check its account.",
    NotFoundError: "Check the owner/name, version id or prediction id, and that your token can "
    "see it.",
    PayloadTooLargeError: "Send a smaller body: files over 100 MB must be hosted elsewhere and "
    "passed as a URL.",
    ValidationError: "Check the input against the model's schema "
    "(await client.models.get('owner/name')).latest_version.openapi_schema.",
    RateLimitError: "Slow down, or raise the limit; the client waits and retries by itself "
    "within its retry policy.",
    ServerError: "Replicate had a problem; retry later, and see https://replicatestatus.com.",
    BadRequestError: "The request was malformed; check the arguments.",
}

_TAG = re.compile(r"<[^>]+>")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")
_MAX_DETAIL = 500


def _text_detail(text: str) -> str | None:
    """Reduce a non-JSON body (plain text or a proxy's HTML page) to one readable line."""
    match = _HTML_TITLE.search(text)
    if match:
        text = match.group(1)
    elif "<" in text and ">" in text:
        text = _TAG.sub(" ", text)
    text = _SPACES.sub(" ", html.unescape(text)).strip()
    if not text:
        return None
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def parse_problem(body: bytes) -> tuple[Any, str | None, str | None]:
    """Split an error body into (parsed JSON or None, title, detail), whatever its format."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed: Any = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):  # not JSON, or nested past any sense
        return None, None, _text_detail(text)
    if isinstance(parsed, dict):
        title = parsed.get("title")
        detail = parsed.get("detail")
        if detail is not None and not isinstance(detail, str):
            try:
                detail = json.dumps(detail)[:_MAX_DETAIL]
            except (ValueError, RecursionError):
                detail = None
        return parsed, title if isinstance(title, str) else None, detail
    return parsed, None, _text_detail(text)


def error_from_response(
    method: str,
    url: str,
    status: int,
    reason: str | None,
    body: bytes,
    *,
    retry_after: float | None = None,
) -> APIError:
    """Build the error for a non-2xx reply: the class from the status, text from the body."""
    parsed, title, detail = parse_problem(body)
    return error_from_problem(
        method, url, status, title or reason or None, detail, parsed, retry_after=retry_after
    )


def error_from_problem(
    method: str,
    url: str,
    status: int,
    title: str | None,
    detail: str | None,
    parsed: Any,
    *,
    retry_after: float | None = None,
) -> APIError:
    """Build the error for a non-2xx reply whose body :func:`parse_problem` already split."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    what = f"{method} {url} failed with {status}" + (f" {title}" if title else "")
    message = what + (f": {detail}" if detail else "")
    hint = _HINTS.get(cls)
    if cls is RateLimitError and retry_after is not None:
        hint = f"The server asks to wait {retry_after:g} s. " + (hint or "")
    if hint:
        message += f". {hint}" if not message.endswith(".") else f" {hint}"
    kwargs: dict[str, Any] = {
        "status": status,
        "title": title,
        "detail": detail,
        "method": method,
        "url": url,
        "body": parsed,
    }
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)


def prediction_error(prediction: Prediction) -> PredictionError | None:
    """The error a finished prediction ended with (failed, canceled, aborted), if any."""
    if prediction.status == Status.FAILED:
        logs = (prediction.logs or "").strip()
        tail = "\n".join(logs.splitlines()[-10:])
        message = f"Prediction {prediction.id} failed: {prediction.error or 'no error given'}"
        if tail:
            message += f"\nLast log lines:\n{tail}"
        return PredictionFailed(message, prediction=prediction)
    if prediction.status in (Status.CANCELED, Status.ABORTED):
        why = (
            "was canceled"
            if prediction.status == Status.CANCELED
            else "was aborted before it started (its Cancel-After deadline passed first)"
        )
        return PredictionCanceled(f"Prediction {prediction.id} {why}.", prediction=prediction)
    return None
