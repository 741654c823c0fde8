"""The poll planner on fake time: who is polled when, sweep or single, budget never exceeded."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from replicate_async.errors import UnknownStatusError
from replicate_async.protocol.polling import Idle, PollPlanner, PollPolicy, Singles, Sweep
from replicate_async.types import Prediction

T0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def p(
    pid: str = "p1", status: str = "starting", created: float | None = 0.0, **kw: object
) -> Prediction:
    at = None if created is None else T0 + timedelta(seconds=created)
    return Prediction(id=pid, status=status, created_at=at, **kw)  # type: ignore[arg-type]


def test_the_schedule_starts_soon_and_backs_off_with_age_to_a_cap() -> None:
    waits = list(itertools.islice(PollPolicy(first=0.25, factor=2, cap=2).intervals(), 7))
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    with pytest.raises(ValueError, match="factor"):
        PollPolicy(factor=1)


def test_a_prediction_is_polled_singly_when_due_and_news_is_change() -> None:
    planner = PollPlanner(PollPolicy(), rate=10, now=0)
    planner.add(p(), "m", now=0)
    assert planner.next_action(0.1) == Idle(0.25)
    assert planner.next_action(0.25) == Singles(("p1",))
    assert planner.next_action(0.3) == Idle(None)  # in flight: nothing else is due
    assert planner.observe(p(status="processing"), 0.3)  # news
    assert not planner.observe(p(status="processing"), 0.6)  # no change
    assert planner.observe(p(status="succeeded", output="x"), 0.9)
    assert "p1" not in planner and len(planner) == 0


def test_an_unknown_status_ends_the_wait_with_an_error() -> None:
    planner = PollPlanner(PollPolicy(), rate=10, now=0)
    planner.add(p(), "m", now=0)
    with pytest.raises(UnknownStatusError, match="queued_somewhere_new"):
        planner.observe(p(status="queued_somewhere_new"), 1)
    assert "p1" not in planner


def test_a_failed_poll_is_tried_again_after_a_backoff_and_a_good_one_resets_it() -> None:
    planner = PollPlanner(PollPolicy(first=0.25, cap=2), rate=10, now=0)
    planner.add(p(), "m", now=0)
    assert planner.next_action(0.25) == Singles(("p1",))
    assert planner.failed("p1", 0.3) == 1
    assert planner.next_action(0.5) == Idle(0.8)  # not at once: 0.25 * 2 later
    assert planner.next_action(0.8) == Singles(("p1",))
    assert planner.failed("p1", 0.9) == 2
    assert planner.next_action(1.0) == Idle(1.9)
    planner.observe(p(status="processing"), 2.0)
    assert planner.next_action(4.0) == Singles(("p1",))
    assert planner.failed("p1", 4.1) == 1  # counted afresh after a good reply
    assert planner.failed("gone", 4.1) == 0  # not waited for: nothing to count


def test_the_first_poll_waits_for_the_models_usual_run_time() -> None:
    planner = PollPlanner(PollPolicy(), rate=10, now=0)
    done = p(
        "old",
        status="succeeded",
        completed_at=T0 + timedelta(seconds=10),  # type: ignore[arg-type]
    )
    planner.learn("slow/model", done)
    assert planner.expected_runtime("slow/model") == 10
    planner.add(p("new"), "slow/model", now=100)
    assert planner.next_action(100) == Idle(109)  # 90% of the usual run time
    planner.add(p("other"), "unknown/model", now=100)
    assert planner.next_action(100.25) == Singles(("other",))


def test_many_due_at_once_are_swept_back_to_the_oldest_in_few_pages() -> None:
    planner = PollPlanner(PollPolicy(), rate=10, now=0)
    for i in range(10):
        planner.add(p(f"p{i}", created=float(i)), "m", now=0)
    action = planner.next_action(1)
    assert isinstance(action, Sweep)
    assert action.since == T0 - timedelta(seconds=1)  # the oldest, less the clock skew
    assert action.until == T0 + timedelta(seconds=10)  # the newest, plus the skew
    assert 1 <= action.pages <= 5  # never more pages than half the singles they replace
    assert set(action.ids) == {f"p{i}" for i in range(10)}
    # The sweep saw all but p0: p0 goes singly, at once.
    for i in range(1, 10):
        planner.observe(p(f"p{i}", status="processing", created=float(i)), 1.1)
    planner.missed(["p0"], 1.1, complete=True)
    assert planner.next_action(1.1) == Singles(("p0",))


def test_a_sweep_soon_is_waited_for_but_what_it_cannot_see_goes_singly() -> None:
    planner = PollPlanner(PollPolicy(sweep_every=2.0), rate=100, now=0)
    for i in range(6):
        planner.add(p(f"p{i}", created=float(i)), "m", now=0)
    assert isinstance(planner.next_action(1), Sweep)
    for i in range(6):
        planner.observe(p(f"p{i}", status="processing", created=float(i)), 1.0)
    planner.add(p("undated", created=None), "m", now=1.0)
    # At 1.8 all are due again (1.0 + 0.25 + 1.0 * 0.5), but the last sweep was 0.8 s ago:
    # they wait for the next one; the one a sweep cannot see goes now.
    assert planner.next_action(1.8) == Singles(("undated",))
    assert planner.next_action(1.8) == Idle(3.0)
    assert isinstance(planner.next_action(3.0), Sweep)


def test_the_budget_is_never_exceeded_whatever_the_number_waiting() -> None:
    """5,000 predictions of a 2 s model, created at 100/s: count requests per second."""
    rate = 20.0
    planner = PollPlanner(PollPolicy(), rate=rate, now=0)
    per_second: Counter[int] = Counter()
    created = 0
    now = 0.0
    finished = 0
    in_flight: dict[str, float] = {}
    while finished < 5000 and now < 200:
        while created < 5000 and created / 100 <= now:
            pid = f"p{created}"
            planner.add(p(pid, created=created / 100), "m", now=now)
            in_flight[pid] = created / 100
            created += 1
        action = planner.next_action(now)
        if isinstance(action, Idle):
            step = 0.01 if action.until is None else max(0.001, min(action.until - now, 0.01))
            now += step
            continue
        if isinstance(action, Sweep):
            # Pages newest first, 100 a page, back to ``since``: as the server pages.
            since = max(0.0, (action.since - T0).total_seconds())
            until = min(created / 100, (action.until - T0).total_seconds())
            needed = max(1, math.ceil((until - since) * 100 / 100))
            pages = 0
            while pages < min(needed, action.pages) and planner.spend(now):
                pages += 1
            per_second[int(now)] += pages
            reach = until * 100 - pages * 100  # the oldest index the pages covered
            ids = tuple(i for i in action.ids if int(i[1:]) >= reach)
            planner.missed(set(action.ids) - set(ids), now, complete=pages == needed)
        else:
            per_second[int(now)] += len(action.ids)
            ids = action.ids
        for pid in ids:
            started = in_flight[pid]
            status = "succeeded" if now - started >= 2 else "processing"
            planner.observe(p(pid, status=status, created=started), now)
            if status == "succeeded":
                finished += 1
                del in_flight[pid]
        now += 0.005
    assert finished == 5000
    # a quarter second's burst on top of the rate at most, in any second
    assert max(per_second.values()) <= rate * 1.25 + 1
    assert sum(per_second.values()) / 5000 < 0.2  # well under 0.2 requests a prediction


def test_out_of_budget_it_idles_until_a_token_comes() -> None:
    planner = PollPlanner(PollPolicy(), rate=1, now=0)
    planner.add(p("a", created=None), "m", now=0)
    planner.add(p("b", created=None), "m", now=0)
    assert planner.next_action(0.25) == Singles(("a",))  # one token
    action = planner.next_action(0.25)
    assert isinstance(action, Idle) and action.until == pytest.approx(1.25)


def test_a_budget_a_hair_under_one_token_still_polls() -> None:
    planner = PollPlanner(PollPolicy(), rate=1, now=0)
    planner.add(p("a", created=None), "m", now=0)
    planner._budget.tokens = 1 - 1e-12  # what float refills leave
    assert planner.next_action(0.25) == Singles(("a",))  # not Idle(0.25) for ever


def test_a_sweep_cut_short_goes_on_from_where_it_stopped() -> None:
    planner = PollPlanner(PollPolicy(), rate=100, now=0)
    for i in range(10):
        planner.add(p(f"p{i}", created=float(i)), "m", now=0)
    sweep = planner.next_action(1)
    assert isinstance(sweep, Sweep)
    # Out of budget after reading back to p5: p5..p9 seen, p0..p4 never reached.
    for i in range(5, 10):
        planner.observe(p(f"p{i}", status="processing", created=float(i)), 1.0)
    planner.missed(
        [f"p{i}" for i in range(5)], 1.0, complete=False, reached=T0 + timedelta(seconds=5)
    )
    resumed = planner.next_action(1.0)  # at once: no waiting for sweep_every
    assert isinstance(resumed, Sweep)
    assert resumed.until == T0 + timedelta(seconds=5)  # below where it stopped
    assert set(resumed.ids) == {f"p{i}" for i in range(5)}
    # never reached is no miss: they stay where sweeps can see them
    planner.missed(resumed.ids, 1.1, complete=False, reached=T0 + timedelta(seconds=4.5))
    assert all(planner._entries[f"p{i}"].created is not None for i in range(5))


def test_a_sweep_snapshot_without_logs_is_no_news() -> None:
    planner = PollPlanner(PollPolicy(), rate=10, now=0)
    planner.add(p(logs="starting up"), "m", now=0)
    assert not planner.observe(p(logs=None), 0.5)  # a list page: logs left out
    assert planner.observe(p(logs="starting up\nmore"), 1.0)  # a GET with new logs
