"""The audit log: every admin action and every token grant, with the state before and after.

Entries are written in the same transaction as the change they describe (for grants made by
billing, right after billing confirmed them), and are never changed (a trigger refuses it).
"""

import base64
import binascii
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from genhub_platform.errors import ApiError
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_gateway.adapters.repositories import AuditFilters, AuditRepository
from genhub_gateway.adapters.tables import AuditRow
from genhub_gateway.schemas import AuditEntryOut, AuditPageOut


def snapshot(model: BaseModel | None) -> dict[str, Any] | None:
    return model.model_dump(mode="json") if model is not None else None


def record(
    session: AsyncSession,
    *,
    actor: str,
    request_id: str,
    action: str,
    target_type: str,
    target_id: str | UUID,
    app_id: UUID | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    AuditRepository(session).add(
        AuditRow(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            app_id=app_id,
            before=before,
            after=after,
            request_id=request_id or None,
        )
    )


def _encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{last_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "audit":
            raise ValueError(kind)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "The cursor is not valid.") from None


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def page(
    session: AsyncSession, filters: AuditFilters, *, limit: int, cursor: str | None
) -> AuditPageOut:
    """Newest first; `next_cursor` continues strictly after this page (stable under inserts)."""
    filters = AuditFilters(
        actor=filters.actor,
        action=filters.action,
        app_id=filters.app_id,
        target_id=filters.target_id,
        since=_aware(filters.since),
        until=_aware(filters.until),
    )
    before_id = _decode(cursor) if cursor is not None else None
    rows = await AuditRepository(session).page(filters, limit=limit + 1, before_id=before_id)
    shown = rows[:limit]
    next_cursor = _encode(int(shown[-1].id or 0)) if len(rows) > limit else None
    return AuditPageOut(
        entries=[AuditEntryOut.model_validate(r, from_attributes=True) for r in shown],
        next_cursor=next_cursor,
    )
