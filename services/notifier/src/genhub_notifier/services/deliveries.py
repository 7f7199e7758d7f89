"""The delivery log an app (through the gateway) reads: deliveries with their attempts."""

from typing import Any
from uuid import UUID

from genhub_platform.uow import UnitOfWork

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.tables import Delivery, DeliveryAttempt


async def delivery_log(
    uow: UnitOfWork, app_id: UUID, job_id: UUID | None, limit: int
) -> list[dict[str, Any]]:
    rows = await repo.list_deliveries(uow.session, app_id, job_id, limit)
    return [_delivery_view(d, attempts) for d, attempts in rows]


def _delivery_view(d: Delivery, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    return {
        "id": d.id,
        "app_id": str(d.app_id),
        "job_id": str(d.job_id),
        "type": d.event_type,
        "status": d.status,
        "url": d.target_url,
        "attempt_count": d.attempt_count,
        "next_attempt_at": _iso(d.next_attempt_at) if d.claim_token is None else None,
        "last_error": d.last_error,
        "created_at": _iso(d.created_at),
        "delivered_at": _iso(d.delivered_at),
        "attempts": [
            {
                "attempt": a.attempt_no,
                "started_at": _iso(a.started_at),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
            }
            for a in attempts
        ],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
