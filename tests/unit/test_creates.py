"""Create options checked once, bodies and headers built once, and a lost create found again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest

from replicate_async.protocol.creates import (
    Claims,
    CreateOptions,
    find_created,
    format_cancel_after,
    hold,
    older_than,
)
from replicate_async.protocol.refs import (
    deployment_target,
    model_target,
    training_target,
    version_target,
)
from replicate_async.types import Prediction, Training

VID = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"


def test_the_body_carries_the_target_input_and_webhook() -> None:
    options = CreateOptions(
        input={"x": 1},
        webhook="https://example.com/hook",
        webhook_events_filter=["start", "completed"],
        stream=True,
        cancel_after=300,
    )
    body = options.body(version_target(f"a/b:{VID}"), {"x": "prepared"})
    assert body == {
        "version": VID,
        "input": {"x": "prepared"},
        "webhook": "https://example.com/hook",
        "webhook_events_filter": ["start", "completed"],
        "stream": True,
    }
    assert options.headers() == {"Cancel-After": "300s"}
    assert CreateOptions().body(model_target("a/b"), {}) == {"input": {}}
    assert CreateOptions().headers() == {}


def test_a_training_names_its_destination() -> None:
    target = training_target("a/b", VID, "me/tuned")
    assert target.path == f"/models/a/b/versions/{VID}/trainings"
    assert target.kind == "trainings" and not target.is_create
    assert target.list_path == "/trainings"
    assert CreateOptions(input={"zip": "u"}).body(target, {"zip": "u"}) == {
        "destination": "me/tuned",
        "input": {"zip": "u"},
    }
    with pytest.raises(ValueError, match="destination"):
        training_target("a/b", VID, "nope")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input": ["not", "a", "dict"]}, TypeError, "input must be a dict"),
        ({"webhook_events_filter": "completed"}, TypeError, "a list like"),
        ({"webhook": 42}, TypeError, "webhook must be a URL"),
        ({"wait": 61}, ValueError, "1-60 seconds"),
        ({"wait": 0.5}, ValueError, "1-60 seconds"),
        ({"wait": "10"}, ValueError, "1-60 seconds"),
        ({"cancel_after": "soon"}, ValueError, "Invalid cancel_after"),
        ({"cancel_after": 2}, ValueError, "between 5 seconds and 24 hours"),
        ({"cancel_after": [5]}, TypeError, "cancel_after must be"),
        ({"file_encoding": "base64"}, ValueError, "file_encoding"),
    ],
)
def test_bad_options_fail_when_built(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        CreateOptions(**kwargs)  # type: ignore[arg-type]


def test_evolving_checks_again() -> None:
    template = CreateOptions(wait=True)
    assert attrs.evolve(template, input={"a": 1}).input == {"a": 1}
    with pytest.raises(TypeError, match="input must be a dict"):
        attrs.evolve(template, input="text")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (30, "30s"),
        (timedelta(minutes=5), "300s"),
        ("5m", "5m"),
        ("1h30m45s", "1h30m45s"),
        ("45", "45"),
        (None, None),
    ],
)
def test_cancel_after_formats(value: object, text: str | None) -> None:
    assert format_cancel_after(value) == text  # type: ignore[arg-type]


def p(pid: str, input: dict[str, object], version: str = VID, minutes_ago: int = 0) -> Prediction:
    created = datetime(2026, 1, 1, 12, tzinfo=timezone.utc) - timedelta(minutes=minutes_ago)
    return Prediction(id=pid, status="starting", input=input, version=version, created_at=created)


def test_find_created_matches_input_and_target_and_skips_claimed() -> None:
    page = [p("other", {"x": 2}), p("mine", {"x": 1}), p("v2", {"x": 1}, version="v2")]
    body = {"version": VID, "input": {"x": 1}}
    by_version = version_target(VID)
    assert find_created(page, by_version, body, claimed=set()) == page[1]
    assert find_created(page, by_version, body, claimed={"mine"}) is None
    training = Training(id="t", status="starting", input={"x": 1}, version=VID)
    assert find_created([training], training_target("a/b", VID, "me/x"), body, set()) is training


def test_find_created_never_adopts_another_models_prediction() -> None:
    body = {"input": {"x": 1}}
    same_input = [
        attrs.evolve(p("theirs", {"x": 1}), model="someone/else"),
        attrs.evolve(p("ours", {"x": 1}), model="a/b"),
    ]
    assert find_created(same_input, model_target("a/b"), body, set()) == same_input[1]
    assert find_created(same_input[:1], model_target("a/b"), body, set()) is None
    deployed = attrs.evolve(p("d", {"x": 1}), deployment="acme/app")
    assert find_created([deployed], deployment_target("acme/app"), body, set()) is deployed
    assert find_created([deployed], deployment_target("acme/other"), body, set()) is None


def test_a_page_older_than_the_window_ends_the_search() -> None:
    since = datetime(2026, 1, 1, 11, 55, tzinfo=timezone.utc)
    assert not older_than([p("a", {}), p("b", {}, minutes_ago=4)], since)
    assert older_than([p("a", {}), p("b", {}, minutes_ago=6)], since)
    assert not older_than([p("a", {}, minutes_ago=60)], None)


def test_claims_are_kept_only_while_a_recovery_could_need_them() -> None:
    claims = Claims(lookback=lambda: 5.0)
    claims.add("old", 0.0)
    slow = claims.begin(50.0)  # a create in progress since t=50 (it may be recovered)
    claims.add("while-slow-ran", 48.0)  # within its lookback (and the 2 s drift margin)
    for i in range(1, 1023):
        claims.add(f"p{i}", 100.0)
    assert "old" not in claims  # before any create in progress, by more than lookback
    assert "while-slow-ran" in claims and "p5" in claims
    claims.end(slow)
    for i in range(1024, 2048):
        claims.add(f"q{i}", 100.0)
    # Nothing older is in progress now: only the last lookback (+2 s) is kept.
    assert "while-slow-ran" not in claims and "p5" in claims


def test_a_million_claims_in_a_steady_job_stay_a_few_thousand() -> None:
    claims = Claims(lookback=lambda: 3.0)
    for i in range(1_000_000):
        now = i / 3000  # 3,000 creates a second
        token = claims.begin(now)
        claims.add(f"p{i}", now + 0.01)
        claims.end(token)
    assert len(claims) < 3000 * (3 + 2) + 1024


def test_a_create_is_held_open_only_when_it_pays() -> None:
    kw = {"max_connections": 100, "expected_runtime": None}
    assert hold(True, held=0, **kw) is True  # a model not seen yet: hold, and learn
    assert hold(10, held=49, **kw) == 10
    assert hold(True, held=50, **kw) is False  # half the pool is held already
    assert hold(False, held=0, **kw) is False  # not asked for
    assert hold(True, held=0, max_connections=100, expected_runtime=5.0) is True
    assert hold(True, held=0, max_connections=100, expected_runtime=120.0) is False
    # a pool of one is never held: the polls and everything else need it
    assert hold(True, held=0, max_connections=1, expected_runtime=None) is False
    assert hold(True, held=0, max_connections=2, expected_runtime=None) is True
