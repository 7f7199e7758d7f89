"""Use cases behind the Kafka handlers: remember jobs, record terminal-event deliveries.

All of them are idempotent on their own (ON CONFLICT DO NOTHING), on top of the consumer's
inbox de-duplication: a replayed or re-published event never adds a second delivery.
"""

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from genhub_contracts import JobCompleted, JobRequested, TokensRejected
from genhub_platform.uow import UnitOfWork

from genhub_notifier.adapters import repository as repo
from genhub_notifier.domain.delivery import WebhookEventType, delivery_id, initial_status

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def remember_job(uow: UnitOfWork, event: JobRequested, now: datetime | None = None) -> None:
    if event.job_id is None:
        log.warning("job.requested without job_id ignored", extra={"event_id": str(event.event_id)})
        return
    spec = event.payload.spec
    await repo.insert_subscription(
        uow.session,
        job_id=event.job_id,
        app_id=event.app_id,
        user_id=spec.user_id,
        model=spec.model,
        webhook_url=str(spec.webhook_url) if spec.webhook_url else None,
        job_metadata=spec.metadata,
    )
    # A terminal event may have overtaken this one (different topics): release its delivery.
    await repo.wake_waiting(uow.session, event.app_id, event.job_id, now or utcnow())


async def record_rejection(
    uow: UnitOfWork, event: TokensRejected, now: datetime | None = None
) -> None:
    payload = event.payload
    await _record_delivery(
        uow,
        event_type=WebhookEventType.REJECTED,
        app_id=event.app_id,
        job_id=event.job_id,
        occurred_at=event.occurred_at,
        event_data={
            "user_id": payload.user_id,
            "error": {"code": payload.reason.value, "message": payload.message},
        },
        now=now or utcnow(),
    )


async def record_completion(
    uow: UnitOfWork, event: JobCompleted, now: datetime | None = None
) -> None:
    payload = event.payload
    error = payload.error
    await _record_delivery(
        uow,
        event_type=WebhookEventType.for_status(payload.status),
        app_id=event.app_id,
        job_id=event.job_id,
        occurred_at=event.occurred_at,
        event_data={
            "user_id": payload.user_id,
            "error": {"code": error.code.value, "message": error.message} if error else None,
        },
        now=now or utcnow(),
    )


async def _record_delivery(
    uow: UnitOfWork,
    *,
    event_type: WebhookEventType,
    app_id: UUID,
    job_id: UUID | None,
    occurred_at: datetime,
    event_data: dict[str, Any],
    now: datetime,
) -> None:
    if job_id is None:
        log.warning("terminal event without job_id ignored", extra={"type": event_type.value})
        return
    subscription = await repo.get_subscription(uow.session, app_id, job_id)
    status = initial_status(
        subscription is not None, subscription.webhook_url if subscription else None
    )
    created = await repo.insert_delivery(
        uow.session,
        id=delivery_id(job_id, event_type),
        app_id=app_id,
        job_id=job_id,
        event_type=event_type.value,
        status=status.value,
        event_data={**event_data, "occurred_at": occurred_at.isoformat()},
        target_url=subscription.webhook_url if subscription else None,
        next_attempt_at=None if status.is_terminal else now,
        created_at=now,
        updated_at=now,
    )
    if created:
        log.info(
            "delivery recorded",
            extra={"job_id": str(job_id), "type": event_type.value, "status": status.value},
        )
