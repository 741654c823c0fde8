"""A create's options, checked once; its body and headers; and finding a create that was lost.

Every way to start work (``predictions.create``, ``models.predictions.create``,
``deployments.predictions.create``, ``trainings.create``, ``run``, ``stream``,
``run_many``) builds one :class:`CreateOptions`: a bad option is an error here, before
any file is read or any request sent. :func:`find_created` is the pure half of
recovering a create whose reply was lost (the I/O half pages through the list).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypedDict, TypeVar

import attrs

from ..types import Prediction, Training
from .refs import Target

__all__ = [
    "Claims",
    "CreateArgs",
    "CreateOptions",
    "StreamArgs",
    "check_input",
    "find_created",
    "format_cancel_after",
    "hold",
    "older_than",
]

J = TypeVar("J", Prediction, Training)

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MIN_CANCEL_AFTER = 5
_MAX_CANCEL_AFTER = 24 * 3600
FILE_ENCODINGS = ("upload", "data-uri")


class _CommonArgs(TypedDict, total=False):
    webhook_events_filter: Iterable[str] | None
    cancel_after: str | float | timedelta | None
    file_encoding: str


class StreamArgs(_CommonArgs, total=False):
    """Options of a streamed create (``client.stream``): see :class:`CreateOptions`."""

    webhook: str | None


class CreateArgs(StreamArgs, total=False):
    """Options of every create: see :class:`CreateOptions`."""

    wait: bool | float


class RunArgs(_CommonArgs, total=False):
    """Options of ``run`` and ``run_many``, which take ``webhook`` themselves (a receiver)."""

    wait: bool | float


def format_cancel_after(value: str | float | timedelta | None) -> str | None:
    """Validate a ``Cancel-After`` duration (5 s to 24 h) and write it as the API wants."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
        text = f"{int(seconds)}s"
    elif isinstance(value, str):
        text = value.strip()
        match = _DURATION.match(text)
        if text.isdigit():
            seconds = float(text)
        elif match and text:
            h, m, s = (int(g or 0) for g in match.groups())
            seconds = h * 3600 + m * 60 + s
        else:
            raise ValueError(
                f"Invalid cancel_after {value!r}: use seconds (30) or a duration like '30s', "
                "'5m', '1h30m45s'."
            )
    else:
        raise TypeError(f"cancel_after must be seconds or a duration string, got {value!r}")
    if not _MIN_CANCEL_AFTER <= seconds <= _MAX_CANCEL_AFTER:
        raise ValueError(f"cancel_after must be between 5 seconds and 24 hours, got {value!r}")
    return text


def check_input(input: Mapping[str, Any] | None) -> dict[str, Any]:
    """A model's input as a fresh dict; anything but a mapping is a TypeError."""
    if input is None:
        return {}
    if not isinstance(input, Mapping):
        raise TypeError(f"input must be a dict of the model's inputs, got {type(input).__name__}")
    return dict(input)


def _events_filter(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("webhook_events_filter must be a list like ['completed']")
    return tuple(value)


def _check_webhook(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"webhook must be a URL string, got {type(value).__name__}")


def _check_wait(_: object, __: attrs.Attribute[Any], value: bool | float) -> None:
    if isinstance(value, bool):
        return
    if not isinstance(value, (int, float)) or not 1 <= float(value) <= 60:
        raise ValueError(f"wait must be True, False or 1-60 seconds, got {value!r}")


def _check_encoding(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in FILE_ENCODINGS:
        raise ValueError(f"file_encoding must be 'upload' or 'data-uri', got {value!r}")


@attrs.frozen(kw_only=True)
class CreateOptions:
    """How to create one prediction or training, checked when built.

    ``wait``: ``True`` holds the reply until the prediction finishes (``Prefer: wait``,
    up to 60 s), seconds hold it that long (1-60), ``False`` does not. ``cancel_after``
    (seconds, a ``timedelta`` or ``"1h30m"``, 5 s to 24 h) makes the server stop it.
    ``file_encoding``: files in ``input`` are uploaded (``"upload"``) or inlined as data
    URIs (``"data-uri"``, up to 1 MB each).
    """

    input: dict[str, Any] = attrs.field(factory=dict, converter=check_input)
    webhook: str | None = attrs.field(default=None, validator=_check_webhook)
    webhook_events_filter: tuple[str, ...] | None = attrs.field(
        default=None, converter=_events_filter
    )
    stream: bool | None = None
    wait: bool | float = attrs.field(default=False, validator=_check_wait)
    cancel_after: str | None = attrs.field(default=None, converter=format_cancel_after)
    file_encoding: str = attrs.field(default="upload", validator=_check_encoding)

    def body(self, target: Target, prepared_input: dict[str, Any]) -> dict[str, Any]:
        """The JSON body of the create, with the input its files were prepared into."""
        body: dict[str, Any] = {**target.body, "input": prepared_input}
        if self.webhook is not None:
            body["webhook"] = self.webhook
        if self.webhook_events_filter is not None:
            body["webhook_events_filter"] = list(self.webhook_events_filter)
        if self.stream is not None:
            body["stream"] = bool(self.stream)
        return body

    def headers(self) -> dict[str, str]:
        """The create's own headers (``Cancel-After``; ``Prefer`` is the session's)."""
        return {} if self.cancel_after is None else {"Cancel-After": self.cancel_after}


#: the share of the connection pool that creates held open (Prefer: wait) may take
HOLD_SHARE = 0.5
#: a model seen to run longer than this is not held for: it would only outlast the hold
HOLD_UP_TO = 30.0


def hold(
    wait: bool | float, *, held: int, max_connections: int, expected_runtime: float | None
) -> bool | float:
    """``wait`` if holding a create open (``Prefer: wait``) pays now, else False.

    A held create saves the polls of a short prediction but keeps a connection of the
    pool busy for its whole run: it is worth it only while at most ``HOLD_SHARE`` of the
    pool is held that way (the pool must never be a bulk job's bottleneck), and only for
    models not seen to run longer than ``HOLD_UP_TO`` seconds.
    """
    if wait is False or held + 1 > max_connections * HOLD_SHARE:
        return False
    if expected_runtime is not None and expected_runtime > HOLD_UP_TO:
        return False
    return wait


class Claims:
    """Ids of predictions this client created or recovered, with when (monotonic seconds).

    Recovering an unknown create never adopts a prediction that another call of ours
    owns. A claim matters only while some create that began before it could still be
    recovered: claims older than the oldest create in progress (:meth:`begin`, then
    :meth:`end`), by more than the recovery's ``lookback`` seconds, are forgotten. Memory
    is the claims of the last few seconds, however long the job.
    """

    __slots__ = ("_active", "_ids", "_next", "lookback")

    def __init__(self, lookback: Callable[[], float] = lambda: 30.0) -> None:
        self._ids: dict[str, float] = {}
        self._active: dict[int, float] = {}  # creates in progress: when each began
        self._next = 0
        #: how far before a send recovery reaches back (the server clock's lookback)
        self.lookback = lookback

    def begin(self, now: float) -> int:
        """A create begins (it may end lost, and be recovered): a token for :meth:`end`."""
        self._next += 1
        self._active[self._next] = now
        return self._next

    def end(self, token: int) -> None:
        """The create (and any recovery of it) is over."""
        self._active.pop(token, None)

    def add(self, job_id: str, now: float) -> None:
        """Claim ``job_id``; now and then forget the claims no recovery can need."""
        self._ids[job_id] = now
        if len(self._ids) % 1024 == 0:
            oldest = min(self._active.values(), default=now)
            # 2 s more for our own clocks' drift (wall against monotonic) while it ran.
            cutoff = min(oldest, now) - self.lookback() - 2.0
            # dicts keep insertion order: the oldest come first
            stale = []
            for key, when in self._ids.items():
                if when >= cutoff:
                    break
                stale.append(key)
            for key in stale:
                del self._ids[key]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


def find_created(
    candidates: Iterable[J],
    target: Target,
    body: Mapping[str, Any],
    claimed: Container[str],
    *,
    since: datetime | None = None,
) -> J | None:
    """The candidate a lost create made: the same input and target, and not claimed.

    ``body`` is what the create sent; the target's identity (its version, model or
    deployment) must be what the candidate reports, so a prediction of another model
    with the same input is never adopted. With ``since``, it must have been created
    then or later: checked here, not left to the server's filter. The newest match wins
    (lists come newest first).
    """
    for candidate in candidates:
        if since is not None and (candidate.created_at is None or candidate.created_at < since):
            continue
        if (
            candidate.id not in claimed
            and candidate.input == body["input"]
            and all(getattr(candidate, key, None) == value for key, value in target.identity)
        ):
            return candidate
    return None


def older_than(candidates: Iterable[Prediction | Training], since: datetime | None) -> bool:
    """Whether a page (newest first) reaches back before ``since``: no need to read on."""
    if since is None:
        return False
    return any(c.created_at is not None and c.created_at < since for c in candidates)
