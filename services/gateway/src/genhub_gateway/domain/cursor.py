"""Opaque page cursors for `GET /v1/jobs` (pure functions).

A cursor names the last job of a page by its sort key, (created_at, job_id), as url-safe
base64 of compact JSON. The next page holds the jobs strictly after that key in the list's
order (newest first, ties by job id), so rows inserted meanwhile never shift a page.
"""

import base64
import binascii
import json
from datetime import UTC, datetime
from uuid import UUID


class InvalidCursor(ValueError):
    """The cursor was not made by `encode_cursor`."""


def encode_cursor(created_at: datetime, job_id: UUID) -> str:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), str(job_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


MAX_CURSOR_LENGTH = 256


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("cursor is empty or too long")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        created, job = json.loads(raw)
        created_at = datetime.fromisoformat(created)
        job_id = UUID(job)
    except (ValueError, TypeError, binascii.Error, UnicodeError) as exc:
        raise InvalidCursor(str(exc)) from None
    if created_at.tzinfo is None:
        raise InvalidCursor("cursor timestamp has no time zone")
    return created_at, job_id
