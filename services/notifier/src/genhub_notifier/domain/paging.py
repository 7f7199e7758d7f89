"""Opaque cursors for newest-first listings: base64 of (created_at, id)."""

import base64
import binascii
import json
from datetime import datetime


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor("cursor is not one this API returned") from exc
    if moment.tzinfo is None or not isinstance(row_id, str):
        raise BadCursor("cursor is not one this API returned")
    return moment, row_id
