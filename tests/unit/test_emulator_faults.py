"""The emulator's one fault mechanism: matching by host, method and route, used up in order."""

from __future__ import annotations

import pytest

from replicate_async.testing import Fault
from replicate_async.testing._state import Faults


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
