"""The delivery log an app (through the gateway) reads and replays."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.tables import Delivery, DeliveryAttempt
from genhub_notifier.domain.delivery import DeliveryStatus
from genhub_notifier.domain.paging import BadCursor, decode_cursor, encode_cursor


def _status(value: str | None) -> DeliveryStatus | None:
    if value is None:
        return None
    try:
        return DeliveryStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in DeliveryStatus)
        raise ApiError(422, "invalid_status", f"status must be one of {allowed}") from None


async def delivery_log(
    uow: UnitOfWork,
    app_id: UUID,
    *,
    status: str | None = None,
    job_id: UUID | None = None,
    endpoint_id: UUID | None = None,
    since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    try:
        before = decode_cursor(cursor) if cursor else None
    except BadCursor as exc:
        raise ApiError(422, "invalid_cursor", str(exc)) from exc
    where = repo.DeliveryFilter(_status(status), job_id, endpoint_id, since, before)
    rows = await repo.list_deliveries(uow.session, app_id, where, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    last = page[-1][0] if page else None
    return {
        "deliveries": [delivery_view(d, attempts) for d, attempts in page],
        "next_cursor": encode_cursor(last.created_at, last.id) if more and last else None,
    }


async def get_delivery(uow: UnitOfWork, app_id: UUID, delivery_id: str) -> dict[str, Any]:
    delivery = await repo.get_delivery(uow.session, app_id, delivery_id)
    if delivery is None:
        raise ApiError(404, "not_found", "no such delivery for this app")
    attempts = await repo.attempts_of(uow.session, [delivery.id])
    return delivery_view(delivery, attempts[delivery.id])


async def replay_one(uow: UnitOfWork, app_id: UUID, delivery_id: str) -> str:
    """Send a finished delivery again, same webhook-id, with a fresh schedule."""
    delivery = await repo.get_delivery(uow.session, app_id, delivery_id, for_update=True)
    if delivery is None:
        raise ApiError(404, "not_found", "no such delivery for this app")
    if delivery.endpoint_id is not None:
        endpoint = await repo.get_endpoint(uow.session, app_id, delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            raise ApiError(
                409, "endpoint_disabled", "the delivery's endpoint is disabled or deleted"
            )
    if not await repo.replay_delivery(uow.session, app_id, delivery_id, datetime.now(UTC)):
        raise ApiError(409, "delivery_pending", "the delivery is still being attempted")
    await repo.notify_due(uow.session)
    await uow.commit()
    return delivery_id


# What `deliveries/replay` takes back: `failed` (what the gateway sends) means every delivery
# that ended without success, dead letters included; `dead_lettered` only the exhausted ones.
REPLAYABLE = {
    "failed": (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED),
    "dead_lettered": (DeliveryStatus.DEAD_LETTERED,),
}


async def replay_failed(
    uow: UnitOfWork,
    app_id: UUID,
    since: datetime,
    endpoint_id: UUID | None = None,
    status: str = "failed",
) -> int:
    if since.tzinfo is None:
        raise ApiError(422, "invalid_since", "since must carry a time zone (e.g. ...Z)")
    count = await repo.replay_failed(
        uow.session, app_id, since, datetime.now(UTC), endpoint_id, REPLAYABLE[status]
    )
    if count:
        await repo.notify_due(uow.session)
    await uow.commit()
    return count


def delivery_view(d: Delivery, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhook_id": d.message_id,
        "app_id": str(d.app_id),
        "job_id": str(d.job_id) if d.job_id else None,
        "endpoint_id": str(d.endpoint_id) if d.endpoint_id else None,
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
                "url": a.url,
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
