"""Server-sent events, sans I/O: bytes in (chunks of any size), events out.

Follows the WHATWG EventSource parsing rules: LF, CR and CRLF line ends (a CRLF may be
split between two chunks, and so may a multi-byte UTF-8 character); a leading BOM is
dropped; ``data`` lines join with ``\\n``; comment lines (``: hi``, ``:408: 408 Request
Timeout``) are skipped; a block without ``data`` dispatches nothing; ``retry`` takes
ASCII digits only; an ``id`` containing NUL is ignored. There is no line-length limit,
events without an ``id`` are kept, and event types this module does not know pass through.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from .files import FileOutput

__all__ = ["SSEDecoder", "ServerSentEvent", "encode_event"]

_LINE_END = re.compile(r"\r\n|\r|\n")


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
    file: FileOutput | None = attrs.field(default=None, eq=False, repr=False)

    def __str__(self) -> str:
        return self.data if self.event == "output" else ""

    def json(self) -> Any:
        """The data parsed as JSON (``error`` and ``done`` events carry JSON)."""
        import json

        return json.loads(self.data)


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events each chunk completed."""

    __slots__ = (
        "_data",
        "_event",
        "_id",
        "_partial",
        "_retry",
        "_skip_lf",
        "_started",
        "_utf8",
        "last_event_id",
        "retry",
    )

    def __init__(self, last_event_id: str = "") -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial: list[str] = []  # pieces of an unfinished line
        self._skip_lf = False  # the last chunk ended in CR: a leading LF is its pair
        self._started = False  # a BOM is dropped at the very start only
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        #: the stream's last event id (what a reconnect sends as ``Last-Event-ID``)
        self.last_event_id = last_event_id
        #: the reconnection delay the server asked for, in milliseconds
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk`` and return every event it completed, in order."""
        text = self._utf8.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if not text:
            return []
        # Most streams use LF only: str.split is several times faster than the regex.
        lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
        if len(lines) == 1:
            # No line end in this chunk: keep the piece. (Joining once at the line's end
            # keeps a multi-megabyte line linear, not quadratic, in its chunk count.)
            self._partial.append(lines[0])
            return []
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
        last = lines.pop()  # what follows the last line end: the start of the next line
        self._partial = [last] if last else []
        if text[-1] == "\r":
            self._skip_lf = True
        # The per-line work is inlined with locals: this loop runs for every line of every
        # token, and method calls and attribute stores were most of its cost.
        events: list[ServerSentEvent] = []
        event, data, event_id, retry = self._event, self._data, self._id, self._retry
        for line in lines:
            if not line:
                if data:
                    events.append(
                        ServerSentEvent(event or "message", "\n".join(data), event_id, retry)
                    )
                    data = []
                # A block with no data dispatches nothing, and resets the type.
                event, event_id, retry = "", None, None
                continue
            # The common fields, written the common way, skip the general parse.
            if line.startswith("data: "):
                data.append(line[6:])
                continue
            if line[0] == ":":
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
                    event_id = self.last_event_id = value
            elif field == "retry" and value.isascii() and value.isdigit():
                retry = self.retry = int(value)
            # other fields are ignored, as the spec says
        self._event, self._data, self._id, self._retry = event, data, event_id, retry
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: an event without its closing blank line is dropped, per spec."""
        self._utf8.decode(b"", final=True)
        self._partial = []
        self._event = ""
        self._data = []
        self._id = None
        self._retry = None
        return []


def encode_event(event: str, data: str, id: str | None = None) -> bytes:
    """One event in wire format (multi-line data as several ``data:`` lines)."""
    out = [f"event: {event}\n"]
    if id is not None:
        out.append(f"id: {id}\n")
    out.extend(f"data: {line}\n" for line in _LINE_END.split(data))
    out.append("\n")
    return "".join(out).encode()
