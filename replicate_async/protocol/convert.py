"""The one cattrs converter that turns API JSON into the payload classes, and its hooks.

Rules (all here, none on the classes):

- unknown keys are ignored (the API adds fields); ``make_converter(forbid_extra_keys=True)``
  builds the strict twin the drift test uses to notice them first;
- a missing key takes the field's default (``None`` for everything optional);
- timestamps become timezone-aware ``datetime``: ``Z`` or an offset, any number of
  fractional digits (the API sends nine; ``datetime`` keeps six), on every Python >= 3.10;
- strict types: a string field takes a string, a number a number, a boolean a boolean,
  a timestamp a string; anything else is an error that names the field;
- ``Any`` fields (``output``, ``input`` values) are passed through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import cattrs

__all__ = ["converter", "make_converter", "parse_datetime"]

T = TypeVar("T")

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)


def parse_datetime(value: str) -> datetime:
    """Parse an RFC 3339 timestamp as the API writes it into an aware datetime.

    ``datetime.fromisoformat`` on 3.10 rejects both ``Z`` and nine fractional digits,
    so this is done by hand. A timestamp with no offset is taken as UTC.
    """
    # Fast path for the API's usual shape ("2023-08-16T19:33:27.215203Z"): 3.11+ parses it
    # natively. The shape check keeps fromisoformat's extra forms (week dates, "T19") out.
    if len(value) >= 20 and value[10] == "T" and value[19] in ".Z+-":
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass  # Python 3.10: no "Z", at most 6 fractional digits; use the regex
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    match = _ISO.match(value.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    # Keep microseconds: truncate (never round: rounding could carry into the next second).
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if offset and offset.upper() != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = timezone(sign * delta)
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second or 0),
        micro,
        tzinfo=tz,
    )


def _wrong(expected: str, value: Any) -> TypeError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return TypeError(f"expected {expected}, got {type(value).__name__} {shown}")


def _structure_datetime(value: Any, _: type) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if type(value) is not str:
        # Not a number (a boolean would be 1970), not anything else: the API sends text.
        raise _wrong("an RFC 3339 timestamp string", value)
    return parse_datetime(value)


def _unstructure_datetime(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _str(value: Any, _: Any = None) -> str:
    if type(value) is str:
        return value
    raise _wrong("a string", value)  # a null id must not become "None"


def _int(value: Any, _: Any = None) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)  # 3.0: JSON has one number type
    raise _wrong("an integer", value)


def _float(value: Any, _: Any = None) -> float:
    # bool is an int subclass; a True where a number belongs is drift, not a number.
    if type(value) in (int, float):
        return float(value)
    raise _wrong("a number", value)


def _bool(value: Any, _: Any = None) -> bool:
    if type(value) is bool:
        return value
    raise _wrong("true or false", value)  # "false" must not become True


def _optional(strict: Callable[[Any, Any], T]) -> Callable[[Any, Any], T | None]:
    """A direct hook for ``kind | None``: None, or exactly what ``strict`` takes.

    It skips cattrs' generic Optional dispatch: a third of the cost of structuring a
    prediction, since nearly every field is optional.
    """

    def hook(value: Any, _: Any) -> T | None:
        return None if value is None else strict(value, None)

    return hook


def _optional_datetime(value: Any, _: Any) -> datetime | None:
    return None if value is None else _structure_datetime(value, datetime)


def _optional_json_object(value: Any, _: Any) -> dict[str, Any] | None:
    if value is None or type(value) is dict:
        return value
    raise _wrong("a JSON object", value)


def make_converter(*, forbid_extra_keys: bool = False) -> cattrs.Converter:
    """Build a converter with every hook this library uses.

    Strict: a field of the wrong JSON type is an error naming the field, never a
    coercion (no ``str(None)``, no ``bool("false")``, no timestamp from a number).
    """
    conv = cattrs.Converter(forbid_extra_keys=forbid_extra_keys)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(datetime, _unstructure_datetime)
    conv.register_structure_hook(datetime | None, _optional_datetime)
    conv.register_structure_hook(dict[str, Any] | None, _optional_json_object)
    for kind, strict in ((str, _str), (int, _int), (float, _float), (bool, _bool)):
        conv.register_structure_hook(kind, strict)
        conv.register_structure_hook(kind | None, _optional(strict))
    return conv


#: The converter the client uses. Built once at import; it holds no mutable state that
#: differs between clients, and cattrs caches its generated functions on it.
converter = make_converter()


def structure(data: Any, cls: type[T]) -> T:
    """Structure ``data`` into ``cls`` with the shared converter."""
    return converter.structure(data, cls)
