"""The emulator's one fault mechanism: matching by host, method and route, used up in order."""

from __future__ import annotations

import pytest

from replicate_async.testing import Fault
from replicate_async.testing._state import Chaos, Faults


def test_faults_match_host_method_and_route_and_are_used_up() -> None:
    faults = Faults()
    faults.add(Fault(method="get", route="/predictions/{id}", times=2, status=503))
    faults.add(Fault(host="stream", cut_after=3))
    assert faults.take("api", "POST", "/predictions/{id}") is None  # another method
    assert faults.take("delivery", "GET", "/predictions/{id}") is None  # another host
    first = faults.take("api", "GET", "/predictions/{id}")
    assert first is not None and first.status == 503
    assert faults.take("api", "GET", "/predictions/{id}") is first
    assert faults.take("api", "GET", "/predictions/{id}") is None  # used up
    cut = faults.take("stream", "GET", "/v1/streams/{key}")  # "*" matches any route
    assert cut is not None and cut.cut_after == 3
    assert faults.take("stream", "GET", "/v1/streams/{key}") is None


def test_first_added_first_used() -> None:
    faults = Faults()
    faults.add(Fault(route="/account", status=500))
    faults.add(Fault(route="/account", status=502))
    assert [faults.take("api", "GET", "/account").status for _ in range(2)] == [500, 502]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fault", "match"),
    [(Fault(host="cdn"), "host"), (Fault(times=0), "at least once")],
)
def test_bad_faults_are_refused(fault: Fault, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Faults().add(fault)


def test_a_fault_is_copied_when_added() -> None:
    mine = Fault(route="/account", times=2, status=500)
    faults = Faults()
    faults.add(mine)
    faults.take("api", "GET", "/account")
    assert mine.times == 2  # the caller's object is left as it was


def test_chaos_faults_a_share_of_requests_of_every_kind_repeatably() -> None:
    def run(seed: int) -> list[str | None]:
        faults = Faults(Chaos(0.2, seed))
        picked = [faults.take("api", "GET", "/predictions/{id}") for _ in range(2000)]
        picked += [faults.take("delivery", "GET", "/{key}/{name}") for _ in range(2000)]
        assert faults.chaos is not None
        assert sum(faults.chaos.injected.values()) == sum(f is not None for f in picked)
        return [None if f is None else repr(f) for f in picked]

    first = run(7)
    assert first == run(7)  # a seed repeats a run
    share = sum(f is not None for f in first) / len(first)
    assert 0.15 < share < 0.25
    faults = Faults(Chaos(1.0, 1))
    kinds = [faults.take("api", "POST", "/predictions") for _ in range(400)]
    assert {f.status for f in kinds if f is not None} >= {429, 500, 502, 503, 200}
    assert any(f is not None and f.reset_after for f in kinds)
    assert any(f is not None and f.delay for f in kinds)
    cuts = [faults.take("stream", "GET", "/v1/streams/{key}") for _ in range(200)]
    assert any(f is not None and f.cut_after for f in cuts)


def test_queued_faults_come_before_chaos_and_no_chaos_means_none() -> None:
    faults = Faults(Chaos(1.0, 1))
    faults.add(Fault(status=418))
    first = faults.take("api", "GET", "/account")
    assert first is not None and first.status == 418
    assert Faults().take("api", "GET", "/account") is None
    with pytest.raises(ValueError, match="0 to 1"):
        Chaos(1.5)
