"""Standard Webhooks signing (https://www.standardwebhooks.com/).

The secret is `whsec_` + base64(random bytes); the HMAC key is the decoded bytes, and the
signed content is `"{id}.{timestamp}.{body}"` over the exact body bytes that are sent.
"""

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def encode_secret(raw: bytes) -> str:
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise ValueError(f"secret must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def decode_secret(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("signing secret must start with whsec_")
    try:
        raw = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("signing secret is not valid base64") from exc
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise ValueError("signing secret has the wrong length")
    return raw


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64 HMAC-SHA256>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secrets: str | list[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Headers of one attempt; several secrets (rotation) give space-separated signatures."""
    keys = [secrets] if isinstance(secrets, str) else secrets
    if not keys:
        raise ValueError("at least one secret is needed to sign")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, msg_id, timestamp, body) for k in keys),
        "content-type": "application/json",
    }
