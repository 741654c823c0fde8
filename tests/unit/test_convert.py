"""The converter: timestamps, open values, and the drift test over real payloads."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import cattrs
import pytest

from replicate_async import types as t
from replicate_async.protocol.convert import converter, make_converter, parse_datetime
from tests.conftest import PAYLOADS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2023-10-29T11:19:59.558752983Z",
            datetime(2023, 10, 29, 11, 19, 59, 558752, timezone.utc),
        ),
        ("2024-08-22T12:26:51.079Z", datetime(2024, 8, 22, 12, 26, 51, 79000, timezone.utc)),
        ("2023-08-16T19:33:27Z", datetime(2023, 8, 16, 19, 33, 27, tzinfo=timezone.utc)),
        (
            "2023-08-16T19:33:27.999999999+00:00",
            datetime(2023, 8, 16, 19, 33, 27, 999999, timezone.utc),
        ),
        ("2023-08-16T21:33:27.5+02:00", datetime(2023, 8, 16, 19, 33, 27, 500000, timezone.utc)),
        ("2023-08-16T19:33:27.1-0130", datetime(2023, 8, 16, 21, 3, 27, 100000, timezone.utc)),
        ("2023-08-16T19:33:27", datetime(2023, 8, 16, 19, 33, 27, tzinfo=timezone.utc)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_parse_datetime_keeps_the_offset() -> None:
    assert parse_datetime("2023-08-16T21:33:27+02:00").utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("text", ["yesterday", "2023-13", "", "2023-08-16T19"])
def test_parse_datetime_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_datetime(text)


def test_unknown_keys_ignored_and_missing_optional_keys_are_none() -> None:
    p = converter.structure({"id": "x", "status": "queued", "brand_new_field": 1}, t.Prediction)
    assert p.status == "queued"  # an unknown status stays a plain string
    assert p.output is None and p.urls is None and p.created_at is None


def test_output_is_passed_through_untouched() -> None:
    output: Any = {"a": [1, 2.5, None, {"b": "https://x"}]}
    p = converter.structure({"id": "x", "status": "succeeded", "output": output}, t.Prediction)
    assert p.output == output


def test_exponent_floats_and_duplicate_keys_from_real_payloads() -> None:
    raw = (PAYLOADS / "recorded" / "training.cancel.200.canceled.json").read_text()
    training = converter.structure(json.loads(raw), t.Training)
    assert training.metrics == {"predict_time": 3e-06}
    assert training.predict_time == pytest.approx(3e-06)


def _kind(name: str) -> Any:
    """Which payload class a reference file holds, from its name."""
    table: list[tuple[tuple[str, ...], Any]] = [
        (("prediction.", "models.predictions."), t.Prediction),
        (("training.",), t.Training),
        (("models.list", "models.search"), t.Page[t.Model]),
        (("model.",), t.Model),
        (("version.",), t.Version),
        (("collections.list",), t.Page[t.Collection]),
        (("collection.",), t.Collection),
        (("hardware.list",), list[t.Hardware]),
        (("file.",), t.File),
        (("files.list",), t.Page[t.File]),
        (("deployments.list",), t.Page[t.Deployment]),
        (("deployment.",), t.Deployment),
        (("account.",), t.Account),
        (("webhooks.default.secret",), t.WebhookSecret),
        (("error.",), t.Problem),
    ]
    for prefixes, cls in table:
        if name.startswith(prefixes):
            return cls
    return None


# Wrappers around non-JSON-API material (SSE streams, header dumps, a signature vector)
# are tested where those features live, not here.
NOT_API_BODIES = ("sse.", "headers.", "webhook.signature.")


def _payload_files() -> list[Path]:
    return sorted(p for p in PAYLOADS.glob("*/*.json") if not p.name.startswith(NOT_API_BODIES))


def test_drift_has_the_payloads_to_check() -> None:
    # The fixtures live in the repo: an empty glob would make the drift test pass vacuously.
    assert len(_payload_files()) >= 45


@pytest.mark.parametrize("path", _payload_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_drift_every_reference_payload_structures_with_extra_keys_forbidden(path: Path) -> None:
    """A new field in the API's replies fails here first, naming the field."""
    cls = _kind(path.name)
    assert cls is not None, f"no payload class mapped for {path.name}: add it to _kind()"
    strict = make_converter(forbid_extra_keys=True)
    try:
        strict.structure(json.loads(path.read_text()), cls)
    except cattrs.BaseValidationError as exc:
        pytest.fail(f"{path.name}: {cattrs.transform_error(exc)}")


def test_drift_test_really_catches_new_keys() -> None:
    strict = make_converter(forbid_extra_keys=True)
    with pytest.raises(cattrs.BaseValidationError):
        strict.structure({"id": "x", "status": "starting", "surprise": 1}, t.Prediction)


def test_status_constants() -> None:
    assert t.Status.TERMINAL == {"succeeded", "failed", "canceled", "aborted"}
    p = converter.structure({"id": "x", "status": "aborted"}, t.Prediction)
    assert p.done
