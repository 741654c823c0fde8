"""ServerClock: the server's clock bounded by its replies' Date headers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from replicate_async.protocol.clock import MARGIN, UNKNOWN_SKEW, ServerClock

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)


def date(at: datetime) -> str:
    return format_datetime(at, usegmt=True)  # "Tue, 01 Dec 2026 12:00:00 GMT"


def test_without_a_date_the_search_reaches_back_the_default_skew() -> None:
    clock = ServerClock()
    clock.observe(None, 0.0, 1.0)
    clock.observe("not a date", 0.0, 1.0)
    assert clock.lookback() == UNKNOWN_SKEW
    assert clock.since(T0) == T0 - timedelta(seconds=UNKNOWN_SKEW)


def test_a_server_ahead_of_us_by_an_hour() -> None:
    clock = ServerClock()
    ours = T0.timestamp()
    # Sent at ours, answered 50 ms later, dated an hour (and 0.5 s) ahead.
    clock.observe(date(T0 + timedelta(hours=1)), ours, ours + 0.05)
    assert clock.lookback() <= 1.05 + MARGIN
    since = clock.since(T0)
    # What we send at T0 arrives after T0 + 1 h by its clock: the search starts there,
    # less the margin, instead of 30 s back by ours (which would miss it entirely).
    assert T0 + timedelta(hours=1) - timedelta(seconds=MARGIN + 0.1) <= since
    assert since <= T0 + timedelta(hours=1)


def test_impossible_or_absurd_dates_are_ignored() -> None:
    clock = ServerClock()
    ours = T0.timestamp()
    clock.observe(date(T0), ours, ours + 0.1)
    good = clock.since(T0)
    clock.observe(date(T0 + timedelta(days=400)), ours, ours + 0.1)  # a broken clock
    assert clock.since(T0) == good


def test_since_is_never_after_the_true_arrival() -> None:
    # The server's true offset is +7.3 s; whatever whole second the Date shows, the
    # bound holds: the arrival (by its clock) is never before since.
    offset = 7.3
    for sent in (0.0, 0.2, 0.5, 0.9):
        base = T0.timestamp() + sent
        server_now = base + offset + 0.01  # it handled the request 10 ms after we sent
        shown = datetime.fromtimestamp(int(server_now), timezone.utc)
        clock = ServerClock()
        clock.observe(date(shown), base, base + 0.03)
        later = T0 + timedelta(seconds=sent + 1)
        arrival = later + timedelta(seconds=offset)
        assert clock.since(later) <= arrival
