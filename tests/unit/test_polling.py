"""Polling decisions (pure), and the one polling loop on fake time."""

from __future__ import annotations

import itertools

import pytest

from replicate_async._watch import PredictionWatch, wait_for
from replicate_async.errors import UnknownStatusError, WaitTimeoutError
from replicate_async.protocol.polling import PollPolicy, PollState
from replicate_async.types import Prediction


def _p(status: str, output: object = None, logs: str = "") -> Prediction:
    return Prediction(id="p1", status=status, output=output, logs=logs)


def test_schedule_starts_soon_and_backs_off_to_a_cap() -> None:
    waits = list(itertools.islice(PollPolicy(first=0.25, factor=2, cap=2).intervals(), 6))
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_only_changes_are_news_and_terminal_is_done() -> None:
    state = PollState(PollPolicy(), timeout=None, now=0)
    seen = [
        state.observe(_p("starting")),
        state.observe(_p("processing")),
        state.observe(_p("processing")),
        state.observe(_p("processing", ["a"])),
        state.observe(_p("processing", ["a"], "l")),
    ]
    assert seen == [True, True, False, True, True]
    assert not state.done
    assert state.observe(_p("succeeded", ["a"], "l")) and state.done


def test_an_unknown_status_is_an_error_not_a_hang() -> None:
    state = PollState(PollPolicy(), timeout=None, now=0)
    with pytest.raises(UnknownStatusError, match="queued_somewhere_new") as info:
        state.observe(_p("queued_somewhere_new"))
    assert info.value.prediction.status == "queued_somewhere_new"


def test_the_last_wait_is_cut_to_the_deadline_then_it_times_out() -> None:
    state = PollState(PollPolicy(first=2, factor=1, cap=2), timeout=3, now=100)
    state.observe(_p("processing"))
    assert state.next_delay(100) == 2
    assert state.next_delay(102) == 1  # only a second left
    with pytest.raises(WaitTimeoutError, match="still processing after 3 s"):
        state.next_delay(103)


class FakeSession:
    """Just what the polling loop uses of a Session: config, timing, request_json."""

    class _Timing:
        def __init__(self, owner: FakeSession) -> None:
            self.owner = owner

        def monotonic(self) -> float:
            return self.owner.now

    class _Config:
        polling = PollPolicy()

    def __init__(self, *snapshots: Prediction) -> None:
        self.snapshots = list(snapshots)
        self.sleeps: list[float] = []
        self.now = 0.0
        self.timing = self._Timing(self)
        self.config = self._Config()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def request_json(self, method: str, path: str, cls: type) -> Prediction:
        assert (method, path) == ("GET", "/predictions/p1")
        return self.snapshots.pop(0)


async def test_watch_yields_only_changes_and_ends_at_terminal() -> None:
    s = FakeSession(
        _p("processing"),
        _p("processing"),
        _p("processing", ["a"]),
        _p("succeeded", ["a", "b"]),
    )
    watch = PredictionWatch(s, _p("starting"))  # type: ignore[arg-type]
    seen = [(p.status, p.output) async for p in watch]
    assert seen == [
        ("starting", None),
        ("processing", None),
        ("processing", ["a"]),
        ("succeeded", ["a", "b"]),
    ]
    assert s.sleeps == [0.25, 0.375, 0.5625, 0.84375]


async def test_a_finished_prediction_makes_no_request() -> None:
    s = FakeSession()
    assert (await wait_for(s, _p("failed"))).status == "failed"  # type: ignore[arg-type]
    assert s.sleeps == []


async def test_wait_times_out_on_fake_time() -> None:
    s = FakeSession(*[_p("processing")] * 100)
    with pytest.raises(WaitTimeoutError):
        await wait_for(s, _p("starting"), timeout=3)  # type: ignore[arg-type]
    assert sum(s.sleeps) == pytest.approx(3.0)


def test_a_bad_id_fails_before_any_iteration() -> None:
    with pytest.raises(ValueError, match="Invalid prediction id"):
        PredictionWatch(FakeSession(), "a/b")  # type: ignore[arg-type]
