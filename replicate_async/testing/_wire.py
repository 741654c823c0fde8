"""The emulator's own encodings: timestamps, SSE frames, data URIs, ids.

Written independently of the client's (which lives in ``replicate_async.protocol``):
the emulator and the client share no protocol code, so a bug on one side shows up as a
failing end-to-end test instead of passing on both.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = [
    "decode_data_uri",
    "format_time",
    "jsonb_order",
    "new_id",
    "parse_time",
    "sse_frame",
]

# Replicate ids are 26 lowercase base32 characters.
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_id() -> str:
    """A fresh prediction/training id, shaped like Replicate's."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def jsonb_order(value: Any) -> Any:
    """``value`` with every object's keys as Postgres ``jsonb`` keeps them: shorter first.

    Replicate stores model schemas as ``jsonb`` and serves them in that order (the
    recorded versions show ``type, title, format, default, ...``); keys of one length
    follow byte order.
    """
    if isinstance(value, dict):
        return {
            key: jsonb_order(value[key])
            for key in sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        }
    if isinstance(value, list):
        return [jsonb_order(item) for item in value]
    return value


def format_time(value: datetime) -> str:
    """A UTC timestamp as the API writes it: microseconds and a ``Z``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp from a query parameter (``Z`` or an offset), as aware UTC.

    Fractional seconds beyond six digits are cut (Python 3.10's ``fromisoformat``
    takes neither ``Z`` nor nine digits).
    """
    value = text.strip().replace(" ", "T")
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def sse_frame(event: str, data: str, event_id: str | None = None) -> bytes:
    """One server-sent event in wire format; multi-line data as several ``data:`` lines."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(
        f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    )
    return ("\n".join(lines) + "\n\n").encode()


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a ``data:[<type>][;base64],<data>`` URI; ValueError if it is not one."""
    if not uri.startswith("data:") or "," not in uri:
        raise ValueError("not a data: URI")
    header, _, payload = uri[5:].partition(",")
    if header.split(";")[-1] == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad base64 in data: URI ({exc})") from None
    return unquote_to_bytes(payload)
