"""Webhook signature verification, pure: headers, raw body and secret in, an answer out.

Replicate signs deliveries the Standard Webhooks way: ``webhook-signature`` holds
space-separated ``v1,<base64 HMAC-SHA256>`` entries of ``"{id}.{timestamp}.{body}"``,
keyed with the base64-decoded part of the ``whsec_...`` secret
(``await client.webhooks.default_secret()``). Deliveries can repeat and arrive out of
order: use ``webhook-id`` to drop repeats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._clock import Timing
from .errors import ReplicateError

if TYPE_CHECKING:
    from .receiver import Receiver

__all__ = ["Receiver", "WebhookVerificationError", "verify"]


def __getattr__(name: str) -> Any:
    # ``replicate_async.webhooks.Receiver``: the receiver module needs this one first.
    if name == "Receiver":
        from .receiver import Receiver

        return Receiver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class WebhookVerificationError(ReplicateError):
    """The delivery is not from Replicate, was altered, or is too old: reject it (400)."""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lower = {key.lower(): val for key, val in headers.items()}
        value = lower.get(name)
    if not value:
        raise WebhookVerificationError(f"missing the {name} header: not a signed delivery")
    return value


def _key(secret: str) -> bytes:
    """The HMAC key in a ``whsec_...`` secret; an empty or malformed one is refused."""
    where = "the 'whsec_...' key from client.webhooks.default_secret()"
    if not isinstance(secret, str) or not secret.removeprefix("whsec_"):
        raise ValueError(
            f"the webhook secret is empty or not a string ({type(secret).__name__}): is its "
            f"environment variable set? It must be {where}."
        )
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValueError(f"the webhook secret is malformed (not base64): it must be {where}.")
    return key


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    tolerance: float | None = 300,
    *,
    now: float | None = None,
) -> None:
    """Check a webhook delivery; raise :class:`WebhookVerificationError` if it fails.

    ``body`` must be the raw request body, byte for byte (parse JSON after verifying).
    ``tolerance`` is how many seconds the timestamp may be off from ``now`` (default
    5 minutes, against replays); ``None`` skips the time check. An empty or malformed
    ``secret``, or a ``tolerance`` that is no finite number >= 0, raises ``ValueError``
    before the delivery is looked at: those are the caller's mistakes, not the sender's.
    """
    # The caller's mistakes first, whatever the delivery: a missing secret (an unset
    # environment variable) must fail loudly, not verify deliveries signed with no key.
    key = _key(secret)
    if tolerance is not None and (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, (int, float))
        or not math.isfinite(tolerance)
        or tolerance < 0
    ):
        raise ValueError(
            f"tolerance must be a finite number of seconds >= 0, or None to skip the time "
            f"check; got {tolerance!r}"
        )
    if not isinstance(body, (bytes, bytearray, memoryview, str)):
        raise TypeError(f"body must be the raw request body (bytes), got {type(body).__name__}")
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    # Digits only: int() would also take " 12", "+12" and "1_2".
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise WebhookVerificationError(f"webhook-timestamp {timestamp[:20]!r} is not a number")
    sent = int(timestamp)
    if tolerance is not None:
        current = Timing().wall() if now is None else now
        if abs(current - sent) > tolerance:
            raise WebhookVerificationError(
                f"webhook-timestamp is {current - sent:+.0f} s from now, beyond the "
                f"{tolerance:g} s tolerance: a replay, or a clock that is off"
            )
    payload = body.encode() if isinstance(body, str) else bytes(body)
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    for entry in signatures.split():
        version, _, signature = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):  # constant time
            return
    raise WebhookVerificationError(
        "no webhook-signature matches: check the secret (client.webhooks.default_secret()) "
        "and that the body is the raw bytes received"
    )
