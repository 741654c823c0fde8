"""Webhook signatures: the published test vector, tampering, time, and bad input."""

from __future__ import annotations

import json

import pytest

from replicate_async.webhooks import WebhookVerificationError, verify
from tests.conftest import PAYLOADS

VECTOR = json.loads((PAYLOADS / "documented" / "webhook.signature.test-vector.json").read_text())
HEADERS: dict[str, str] = VECTOR["headers"]
BODY: str = VECTOR["body"]
SECRET: str = VECTOR["secret"]
SENT = int(HEADERS["webhook-timestamp"])


def test_the_test_vector_verifies() -> None:
    verify(HEADERS, BODY.encode(), SECRET, now=SENT + 10)
    verify(HEADERS, BODY, SECRET, tolerance=None)  # str body, no time check


def test_header_names_are_case_insensitive() -> None:
    verify({k.title(): v for k, v in HEADERS.items()}, BODY, SECRET, now=SENT)


@pytest.mark.parametrize(
    "change",
    [
        {"body": BODY.replace("2432232314", "2432232315")},
        {"webhook-id": "msg_other"},
        {"webhook-timestamp": str(SENT + 1)},
        {"secret": "whsec_" + "A" * 32},
    ],
)
def test_any_change_fails(change: dict[str, str]) -> None:
    headers = {**HEADERS, **{k: v for k, v in change.items() if k.startswith("webhook")}}
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify(headers, change.get("body", BODY), change.get("secret", SECRET), tolerance=None)


def test_one_good_signature_among_several_is_enough() -> None:
    headers = {**HEADERS, "webhook-signature": "v1,bm9wZQ== v2,xyz " + HEADERS["webhook-signature"]}
    verify(headers, BODY, SECRET, tolerance=None)


def test_stale_or_future_timestamps_fail() -> None:
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(HEADERS, BODY, SECRET, now=SENT + 301)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify(HEADERS, BODY, SECRET, now=SENT - 301)
    verify(HEADERS, BODY, SECRET, tolerance=600, now=SENT + 301)


def test_missing_headers_and_bad_secret() -> None:
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify({k: v for k, v in HEADERS.items() if k != "webhook-signature"}, BODY, SECRET)
    with pytest.raises(WebhookVerificationError, match="not a number"):
        verify({**HEADERS, "webhook-timestamp": "soon"}, BODY, SECRET)
    with pytest.raises(ValueError, match="whsec_"):
        verify(HEADERS, BODY, "not base64!", tolerance=None)
