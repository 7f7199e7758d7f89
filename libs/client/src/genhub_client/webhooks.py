"""Verify genhub webhooks (Standard Webhooks: https://www.standardwebhooks.com)."""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)


class WebhookVerificationError(Exception):
    """The webhook is not authentic, is malformed, or is too old (or too new) to accept."""


def _secret_bytes(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("the signing secret is not valid base64") from exc


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = 300,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a webhook's signature and timestamp; return its JSON payload.

    `headers` may use any letter case. The `webhook-signature` header may hold several
    space-separated `v1,<base64>` signatures (during secret rotation); one match suffices.
    Raises WebhookVerificationError otherwise.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")

    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    # Both directions: an old timestamp is a replay; a future one is as suspect.
    if abs(current - sent_at) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")

    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    matched = False
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            presented = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Check all candidates in constant time each; do not stop early on a match.
        matched |= hmac.compare_digest(presented, expected)
    if not matched:
        raise WebhookVerificationError("no matching signature")

    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return payload
