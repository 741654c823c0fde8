"""Server-sent events, sans I/O: bytes in (chunks of any size), events out.

Follows the WHATWG EventSource parsing rules: LF, CR and CRLF line ends (a CRLF may be
split between two chunks, and so may a multi-byte UTF-8 character); a leading BOM is
dropped; ``data`` lines join with ``\\n``; comment lines (``: hi``, ``:408: 408 Request
Timeout``) are skipped; a block without ``data`` dispatches nothing; ``retry`` takes
ASCII digits only; an ``id`` containing NUL is ignored. Events without an ``id`` are
kept, and event types this module does not know pass through. One limit is ours: an
event (or a line) longer than ``max_event_size`` raises :class:`EventTooLarge`, so a
server that never ends a line cannot fill the memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from os import PathLike
from typing import Any, NoReturn, Protocol

import attrs

__all__ = [
    "MAX_EVENT_SIZE",
    "Downloadable",
    "EventTooLarge",
    "ReplayFilter",
    "SSEDecoder",
    "ServerSentEvent",
]

#: the default largest event (a file stream's data URI may be a few MB)
MAX_EVENT_SIZE = 16 * 1024 * 1024


class EventTooLarge(ValueError):
    """An event (or one line) went on past the decoder's ``max_event_size``."""


_LINE_END = re.compile(r"\r\n|\r|\n")
# An event as Replicate (and most servers) write it, LF line ends: an optional non-empty
# "event: " line, an optional "id: " line (non-empty, without NUL), one "data: " line,
# a blank line. Runs of these are decoded by the regex engine, in C, without a Python
# step per line; the WHATWG rules give exactly what the general loop gives them (the
# property tests hold both to a plain implementation of the rules).
_EVENT = re.compile(r"(?:event: ([^\n]+)\n)?(?:id: ([^\n\0]+)\n)?data: ([^\n]*)\n\n")
#: what each event's match adds beyond its three values: the three fields' names and
#: their line ends ("event: " + "\n", "id: " + "\n", "data: " + "\n\n")
_EVENT_SIZE, _ID_SIZE, _DATA_SIZE = 8, 5, 8
#: ids made of numbers ("1690212292:7" from nchan, "1690212292000-0" from Redis
#: streams, "42"): ordered, so "seen" is "not after the newest"
_ORDERED_ID = re.compile(r"\d{1,30}(?:[:-]\d{1,30}){0,3}")


class Downloadable(Protocol):
    """What ``ServerSentEvent.file`` offers: a :class:`~replicate_async.FileOutput`.

    Spelled out here so that this module, which only decodes, needs no download code.
    """

    url: str

    async def read(self) -> bytes:
        """All the bytes."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The bytes in chunks."""

    async def save(self, path: str | PathLike[str]) -> Any:
        """Write the file to ``path`` atomically."""


@attrs.define(slots=True)
class ServerSentEvent:
    """One event. ``str(event)`` is its text for ``output`` events and "" for the rest.

    ``id`` is the id this event carried (None if it had none; the decoder keeps the
    stream's last id in ``SSEDecoder.last_event_id``). ``file`` is a :class:`FileOutput`
    when an ``output`` event carries a file (a URL or data URI from a file stream).
    (Not frozen: a frozen attrs class costs three times as much to build, and a stream
    builds one per token.)
    """

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    file: Downloadable | None = attrs.field(default=None, eq=False, repr=False)

    def __str__(self) -> str:
        return self.data if self.event == "output" else ""

    def json(self) -> Any:
        """The data parsed as JSON (``error`` and ``done`` events carry JSON)."""
        return json.loads(self.data)


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events each chunk completed."""

    __slots__ = (
        "_counted",
        "_data",
        "_event",
        "_id",
        "_max",
        "_pending",
        "_retry",
        "_size",
        "_skip_lf",
        "_started",
        "last_event_id",
        "retry",
    )

    def __init__(
        self,
        last_event_id: str = "",
        *,
        retry: int | None = None,
        max_event_size: int = MAX_EVENT_SIZE,
    ) -> None:
        # The bytes of an unfinished line. Kept as bytes, decoded once when the line ends:
        # a multi-byte character split between chunks is whole by then, and a long line
        # is copied twice (in, then decoded) instead of four times.
        self._pending = bytearray()
        self._skip_lf = False  # the last chunk ended in CR: a leading LF is its pair
        self._started = False  # a BOM is dropped from the stream's first line only
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._max = max_event_size
        # The unfinished event's size so far, and how many of its data lines that counts:
        # counted once each, however many chunks the event spans.
        self._size = 0
        self._counted = 0
        #: the stream's last event id (what a reconnect sends as ``Last-Event-ID``)
        self.last_event_id = last_event_id
        #: the reconnection delay the server asked for, in milliseconds (kept across
        #: connections: a new decoder for a new connection takes it over)
        self.retry: int | None = retry

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk`` and return every event it completed, in order."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        # Where the last line of this chunk ends; what follows is an unfinished line.
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:
            self._pending += chunk
            if len(self._pending) > self._max:
                self._too_large("a line")
            return []
        if chunk[end] == 13:  # CR: its LF, if any, may open the next chunk
            self._skip_lf = True
        view = memoryview(chunk)
        first = _first_line_end(chunk, end)
        if self._pending:
            # The first line began in an earlier chunk: finish it in bytes, decode once.
            self._pending += view[:first]
            head = self._decode_line(self._pending)
            self._pending = bytearray()
            rest = str(view[first : end + 1], "utf-8", "replace")
        else:
            head = None
            rest = str(view[: end + 1], "utf-8", "replace")
        self._pending += view[end + 1 :]
        if len(self._pending) > self._max:
            self._too_large("a line")
        if head is not None:
            text = head + rest  # rest starts with the end of the head's line
        elif not self._started:
            self._started = True
            text = rest[1:] if rest[:1] == "\ufeff" else rest
        else:
            text = rest
        if "\r" not in text:
            return self._text(text)  # LF only, as almost every stream: the fast path
        lines = _LINE_END.split(text)
        lines.pop()  # the empty string after the chunk's last line end
        return self._lines(lines)

    def _text(self, text: str) -> list[ServerSentEvent]:
        """Decode whole LF-ended lines: runs of common events by the regex, the rest by line."""
        events: list[ServerSentEvent] = []
        at = 0
        if self._event or self._data or self._id is not None or self._retry is not None:
            # An event begun in an earlier chunk: its lines, to its blank line, one by one.
            if text[:1] == "\n":
                at = 1
            else:
                blank = text.find("\n\n")
                at = blank + 2 if blank >= 0 else len(text)  # no blank line: all of it
            events += self._lines(text[:at].split("\n")[:-1])
        last = text.rfind("\n\n", at)
        if last >= at:
            stop = last + 2
            fast = self._common(text, at, stop) if stop - at <= self._max else None
            events += fast if fast is not None else self._lines(text[at:stop].split("\n")[:-1])
            at = stop
        if at < len(text):
            events += self._lines(text[at:].split("\n")[:-1])
        return events

    def _common(self, text: str, start: int, stop: int) -> list[ServerSentEvent] | None:
        """The events of ``text[start:stop]`` if it is all common events, else None."""
        found = _EVENT.findall(text, start, stop)
        if not found:
            return None
        kinds, ids, datas = zip(*found, strict=True)
        # The matches tile the span (no line left out: a comment, a retry, another
        # order) exactly when their lengths add up to it. All counted in C.
        covered = (
            sum(map(len, kinds))
            + sum(map(len, ids))
            + sum(map(len, datas))
            + _EVENT_SIZE * (len(kinds) - kinds.count(""))
            + _ID_SIZE * (len(ids) - ids.count(""))
            + _DATA_SIZE * len(datas)
        )
        if covered != stop - start:
            return None
        if "" in kinds:
            kinds = tuple(kind or "message" for kind in kinds)
        if "" in ids:
            ids = tuple(event_id or None for event_id in ids)
        for event_id in reversed(ids):
            if event_id:
                self.last_event_id = event_id
                break
        return list(map(ServerSentEvent, kinds, datas, ids))

    def _decode_line(self, raw: bytearray) -> str:
        if not self._started:
            self._started = True
            if raw[:3] == b"\xef\xbb\xbf":
                del raw[:3]
        return raw.decode("utf-8", "replace")

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        # The per-line work is inlined with locals: this loop runs for every line of every
        # token, and method calls and attribute stores were most of its cost.
        events: list[ServerSentEvent] = []
        dispatch, make = events.append, ServerSentEvent
        event, data, event_id, retry = self._event, self._data, self._id, self._retry
        # Only a finished block moves the resume point: an id line of an event cut
        # before its end must not make a reconnect skip it.
        resume_at = None
        for line in lines:
            if not line:
                if event_id is not None:
                    resume_at = event_id
                if data:
                    text = data[0] if len(data) == 1 else "\n".join(data)
                    dispatch(make(event or "message", text, event_id, retry))
                    data = []
                # A block with no data dispatches nothing, and resets the type.
                event, event_id, retry = "", None, None
                continue
            # The common fields, written the common way ("name: value"), skip the
            # general parse: the value is what follows the one space.
            first = line[0]
            if first == "d":
                if line.startswith("data: "):
                    data.append(line[6:])
                    continue
            elif first == "i":
                if line.startswith("id: "):
                    if "\0" not in line:
                        event_id = line[4:]
                    continue
            elif first == "e":
                if line.startswith("event: "):
                    event = line[7:]
                    continue
            elif first == ":":
                continue  # a comment: ": hi", ":408: 408 Request Timeout"
            field, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
            elif field == "id":
                if "\0" not in value:
                    event_id = value
            elif field == "retry" and value.isascii() and value.isdigit():
                retry = self.retry = int(value)
            # other fields are ignored, as the spec says
        if resume_at is not None:
            self.last_event_id = resume_at
        if data is not self._data:
            self._size = self._counted = 0  # an event was dispatched: a new one began
        self._event, self._data, self._id, self._retry = event, data, event_id, retry
        if len(data) > self._counted:
            # An event spans chunks: count only its lines this chunk added.
            self._size += sum(map(len, data[self._counted :])) + len(data) - self._counted
            self._counted = len(data)
            if self._size > self._max:
                self._too_large("an event")
        return events

    def _too_large(self, what: str) -> NoReturn:
        self._pending = bytearray()
        self._data = []
        self._size = self._counted = 0
        raise EventTooLarge(
            f"the server sent {what} of more than {self._max:,} bytes without ending it "
            "(StreamPolicy(max_event_size=...)); stopped."
        )


def _first_line_end(chunk: bytes, last: int) -> int:
    """Index of the first CR or LF in ``chunk`` (there is one, at ``last`` at the latest)."""
    lf = chunk.find(b"\n", 0, last + 1)
    cr = chunk.find(b"\r", 0, last + 1)
    if lf < 0:
        return cr
    if cr < 0:
        return lf
    return min(lf, cr)


class ReplayFilter:
    """Which events a reconnected stream already gave out, in bounded memory.

    A stream resumed with ``Last-Event-ID`` should send only what followed, but a server
    may replay from further back. Ids made of numbers (``1690212292:7``, as Replicate's
    streams send, or ``1690212292000-0``) are ordered: after a reconnect, an event is a
    replay while its id is not after the resume point, which costs nothing per event
    until a reconnect and one id of memory however long the stream. A stream whose ids
    are not numbers has its last ``window`` ids remembered (a replay reaching back
    further than that is not caught).
    """

    __slots__ = ("_opaque", "_recent", "_resume", "_window")

    def __init__(self, window: int = 1024) -> None:
        self._resume: tuple[int, ...] | None = None  # armed: after a reconnect
        self._opaque: bool | None = None  # decided by the stream's first id
        self._recent: dict[str, None] = {}  # insertion-ordered: the oldest goes first
        self._window = window

    def resumed(self, last_event_id: str) -> None:
        """A new connection resumes after ``last_event_id``: what is not after it is old."""
        self._resume = _order_key(last_event_id) if last_event_id else None

    def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was given out before; if not, it counts as given now."""
        if self._opaque is None:
            self._opaque = _order_key(event_id) is None
        if self._opaque:
            if event_id in self._recent:
                return True
            self._recent[event_id] = None
            if len(self._recent) > self._window:
                del self._recent[next(iter(self._recent))]
            return False
        if self._resume is None:
            return False  # not reconnected, or already past the resume point
        key = _order_key(event_id)
        if key is not None and key <= self._resume:
            return True
        self._resume = None  # the server went past the resume point: all new from here
        return False


def _order_key(event_id: str) -> tuple[int, ...] | None:
    if not _ORDERED_ID.fullmatch(event_id):
        return None
    return tuple(map(int, re.split("[:-]", event_id)))
