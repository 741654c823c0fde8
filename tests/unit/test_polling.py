"""The shared polling loop: backoff schedule, snapshots, unknown statuses, timeouts."""

from __future__ import annotations

import itertools

import pytest

from replicate_async.errors import UnknownStatusError, WaitTimeoutError
from replicate_async.polling import PollPolicy, poll
from replicate_async.types import Prediction


def test_schedule_starts_soon_and_backs_off_to_a_cap() -> None:
    waits = list(itertools.islice(PollPolicy(first=0.25, factor=2, cap=2).intervals(), 6))
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def _p(status: str, output: object = None, logs: str = "") -> Prediction:
    return Prediction(id="p1", status=status, output=output, logs=logs)


class Script:
    """A fake GET that plays snapshots in order and records the sleeps between them."""

    def __init__(self, *snapshots: Prediction) -> None:
        self.snapshots = list(snapshots)
        self.sleeps: list[float] = []
        self.now = 0.0

    async def fetch(self, _id: str) -> Prediction:
        return self.snapshots.pop(0)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_yields_only_changes_and_ends_at_terminal() -> None:
    s = Script(
        _p("starting"),
        _p("processing"),
        _p("processing"),
        _p("processing", ["a"]),
        _p("processing", ["a"], "l"),
        _p("succeeded", ["a", "b"]),
    )
    first = _p("starting")
    seen = [(p.status, p.output, p.logs) async for p in poll(first, s.fetch, PollPolicy(), s.sleep)]
    assert seen == [
        ("starting", None, ""),
        ("processing", None, ""),
        ("processing", ["a"], ""),
        ("processing", ["a"], "l"),
        ("succeeded", ["a", "b"], ""),
    ]
    assert s.sleeps[:3] == [0.25, 0.375, 0.5625]


async def test_terminal_first_snapshot_makes_no_request() -> None:
    s = Script()
    seen = [p async for p in poll(_p("failed"), s.fetch, PollPolicy(), s.sleep)]
    assert [p.status for p in seen] == ["failed"] and s.sleeps == []


async def test_unknown_status_is_an_error_not_a_hang() -> None:
    s = Script(_p("queued_somewhere_new"))
    with pytest.raises(UnknownStatusError, match="queued_somewhere_new") as info:
        async for _ in poll(_p("starting"), s.fetch, PollPolicy(), s.sleep):
            pass
    assert info.value.prediction.status == "queued_somewhere_new"


async def test_timeout() -> None:
    s = Script(*[_p("processing")] * 100)
    with pytest.raises(WaitTimeoutError, match="still processing after 3 s"):
        async for _ in poll(
            _p("starting"), s.fetch, PollPolicy(cap=1), s.sleep, timeout=3, clock=lambda: s.now
        ):
            pass
    assert sum(s.sleeps) == pytest.approx(3.0)
