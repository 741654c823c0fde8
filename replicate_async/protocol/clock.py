"""The server's clock, as far as the ``Date`` headers of its replies tell it.

Finding the prediction a lost create made means listing what the server created since
the create was sent, by the server's clock (``created_at``). Our clock and its differ;
without knowing by how much, the search has to reach back 30 seconds, which at a bulk
job's rate is thousands of predictions to page through per lost create. Each reply's
``Date`` (whole seconds, taken while the server handled the request) bounds the offset:
the server read ``date`` to ``date + 1`` at some instant between our send and our
receipt, so ``date - received <= offset <= date + 1 - sent``. With that, the search
reaches back the width of those bounds and a margin: a couple of seconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["ServerClock"]

#: how far back a search reaches when no Date has been seen (clocks may be this far off)
UNKNOWN_SKEW = 30.0
#: added to what the bounds allow: the server that dates the reply and the one that dates
#: the prediction are different machines, each with its own (NTP-synced) clock
MARGIN = 2.0
#: offsets beyond this are a proxy's or a broken clock's word, not the API's: ignored
_ABSURD = 24 * 3600.0


class ServerClock:
    """Bounds on (server time - our time), from the latest reply that carried a Date."""

    __slots__ = ("_date", "_high", "_low", "_stamp")

    def __init__(self) -> None:
        self._low: float | None = None
        self._high: float | None = None
        self._date = ""  # the last Date header parsed, and its Unix time: parsed once
        self._stamp = 0.0

    def observe(self, date: str | None, sent: float, received: float) -> None:
        """A reply dated ``date`` (a header value) to a request sent and received then."""
        if not date:
            return
        if date != self._date:
            try:
                stamp = parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return  # not a date: nothing learned
            self._date, self._stamp = date, stamp
        low, high = self._stamp - received, self._stamp + 1.0 - sent
        if low > high or abs(low) > _ABSURD:
            return  # impossible bounds (a cached reply, a proxy's clock): not the API's
        self._low, self._high = low, high

    def lookback(self) -> float:
        """Seconds before a send (by our clock) that its prediction may be dated."""
        if self._low is None or self._high is None:
            return UNKNOWN_SKEW
        return (self._high - self._low) + MARGIN

    def since(self, sent_after: datetime) -> datetime:
        """The earliest ``created_at`` (server time) of what was sent after ``sent_after``."""
        if self._low is None:
            return sent_after - timedelta(seconds=UNKNOWN_SKEW)
        return sent_after + timedelta(seconds=self._low - MARGIN)
