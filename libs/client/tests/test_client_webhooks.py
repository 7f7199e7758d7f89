"""verify_webhook: Standard Webhooks signatures, tampering, secrets, timestamps, rotation."""

import base64
import hashlib
import hmac
import json

import pytest
from genhub_client import WebhookVerificationError, verify_webhook

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-another-secret!!").decode()
NOW = 1_700_000_000
BODY = json.dumps({"type": "job.succeeded", "data": {"job_id": "j1"}}).encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    signature: str | None = None, timestamp: int = NOW, msg_id: str = "msg_1"
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or sign(KEY, msg_id, timestamp, BODY),
    }


def test_valid_webhook_returns_the_payload() -> None:
    assert verify_webhook(SECRET, headers(), BODY, now=NOW) == json.loads(BODY)


def test_header_names_are_case_insensitive() -> None:
    mixed = {k.title(): v for k, v in headers().items()}
    assert verify_webhook(SECRET, mixed, BODY, now=NOW)["type"] == "job.succeeded"


def test_tampered_body_is_rejected() -> None:
    tampered = BODY.replace(b"j1", b"j2")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, headers(), tampered, now=NOW)


def test_tampered_id_or_timestamp_is_rejected() -> None:
    good = headers()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, {**good, "webhook-id": "msg_2"}, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, {**good, "webhook-timestamp": str(NOW + 1)}, BODY, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(OTHER_SECRET, headers(), BODY, now=NOW)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_timestamp_outside_tolerance_is_rejected(offset: int) -> None:
    sent = NOW + offset
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(SECRET, headers(timestamp=sent), BODY, now=NOW)


def test_timestamp_inside_a_custom_tolerance_passes() -> None:
    sent = NOW - 290
    assert verify_webhook(SECRET, headers(timestamp=sent), BODY, now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, headers(timestamp=sent), BODY, now=NOW, tolerance_s=60)


def test_any_of_several_signatures_may_match() -> None:
    good = sign(KEY, "msg_1", NOW, BODY)
    stale = sign(b"old key", "msg_1", NOW, BODY)
    assert verify_webhook(SECRET, headers(f"{stale} {good}"), BODY, now=NOW)
    assert verify_webhook(SECRET, headers(f"v2,abc {good}"), BODY, now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, headers(f"{stale} v1,notbase64!!"), BODY, now=NOW)


def test_only_v1_signatures_count() -> None:
    v2 = sign(KEY, "msg_1", NOW, BODY).replace("v1,", "v2,")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, headers(v2), BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_rejected(missing: str) -> None:
    partial = {k: v for k, v in headers().items() if k != missing}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, partial, BODY, now=NOW)


def test_non_numeric_timestamp_and_bad_secret_are_rejected() -> None:
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, {**headers(), "webhook-timestamp": "soon"}, BODY, now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook("whsec_!!!", headers(), BODY, now=NOW)


def test_secret_without_prefix_is_accepted() -> None:
    bare = SECRET.removeprefix("whsec_")
    assert verify_webhook(bare, headers(), BODY, now=NOW)


def test_uses_the_clock_when_now_is_not_given() -> None:
    import time

    sent = int(time.time())
    assert verify_webhook(SECRET, headers(sign(KEY, "m", sent, BODY), sent, "m"), BODY)
