"""Use cases behind the Kafka handlers: remember jobs and settlements, record messages.

All of them are idempotent on their own (ON CONFLICT DO NOTHING, ids derived from the
event), on top of the consumer's inbox de-duplication: a replayed event never adds a second
message or delivery.
"""

import logging
from datetime import UTC, datetime
from uuid import UUID

from genhub_contracts import JobCompleted, JobRequested, LowBalance, TokensRejected, TokensSettled
from genhub_platform.uow import UnitOfWork

from genhub_notifier.adapters import repository as repo
from genhub_notifier.domain.body import iso8601
from genhub_notifier.domain.delivery import WebhookEventType, event_message_id, job_message_id
from genhub_notifier.services.fanout import FanoutConfig, record_message

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventRecorder:
    def __init__(self, config: FanoutConfig) -> None:
        self._config = config

    # Batch forms (one unit of work per Kafka batch; see handlers.kafka).

    async def remember_jobs(self, uow: UnitOfWork, events: list[JobRequested]) -> None:
        for event in events:
            await self.remember_job(uow, event)

    async def remember_settlements(self, uow: UnitOfWork, events: list[TokensSettled]) -> None:
        for event in events:
            await self.remember_settlement(uow, event)

    async def record_rejections(self, uow: UnitOfWork, events: list[TokensRejected]) -> None:
        for event in events:
            await self.record_rejection(uow, event)

    async def record_completions(self, uow: UnitOfWork, events: list[JobCompleted]) -> None:
        for event in events:
            await self.record_completion(uow, event)

    async def remember_job(
        self, uow: UnitOfWork, event: JobRequested, now: datetime | None = None
    ) -> None:
        if event.job_id is None:
            log.warning(
                "job.requested without job_id ignored", extra={"event_id": str(event.event_id)}
            )
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
            requested_at=event.occurred_at,
        )
        # A terminal event may have overtaken this one (different topics): release it.
        await self._wake(uow, event.app_id, event.job_id, now)

    async def remember_settlement(
        self, uow: UnitOfWork, event: TokensSettled, now: datetime | None = None
    ) -> None:
        if event.job_id is None:
            return
        payload = event.payload
        await repo.insert_settlement(
            uow.session,
            job_id=event.job_id,
            app_id=event.app_id,
            outcome=payload.outcome,
            charged=payload.charged,
            refunded=payload.refunded,
        )
        await self._wake(uow, event.app_id, event.job_id, now)

    async def _wake(
        self, uow: UnitOfWork, app_id: UUID, job_id: UUID, now: datetime | None
    ) -> None:
        if await repo.wake_messages(uow.session, app_id, job_id, now or utcnow()):
            await repo.notify_due(uow.session)

    async def record_rejection(
        self, uow: UnitOfWork, event: TokensRejected, now: datetime | None = None
    ) -> None:
        if event.job_id is None:
            log.warning("tokens.rejected without job_id ignored")
            return
        payload = event.payload
        await record_message(
            uow.session,
            self._config,
            message_id=job_message_id(event.job_id, WebhookEventType.REJECTED),
            app_id=event.app_id,
            job_id=event.job_id,
            event_type=WebhookEventType.REJECTED,
            event_data={
                "user_id": payload.user_id,
                "error": {"code": payload.reason.value, "message": payload.message},
                "tokens_charged": 0,
                "tokens_refunded": 0,
                "completed_at": iso8601(event.occurred_at),
            },
            occurred_at=event.occurred_at,
            now=now or utcnow(),
        )

    async def record_completion(
        self, uow: UnitOfWork, event: JobCompleted, now: datetime | None = None
    ) -> None:
        if event.job_id is None:
            log.warning("job.completed without job_id ignored")
            return
        payload = event.payload
        error = payload.error
        event_type = WebhookEventType.for_status(payload.status)
        await record_message(
            uow.session,
            self._config,
            message_id=job_message_id(event.job_id, event_type),
            app_id=event.app_id,
            job_id=event.job_id,
            event_type=event_type,
            event_data={
                "user_id": payload.user_id,
                "error": {"code": error.code.value, "message": error.message} if error else None,
                "completed_at": iso8601(event.occurred_at),
            },
            occurred_at=event.occurred_at,
            now=now or utcnow(),
        )

    async def record_low_balance(
        self, uow: UnitOfWork, event: LowBalance, now: datetime | None = None
    ) -> None:
        payload = event.payload
        await record_message(
            uow.session,
            self._config,
            message_id=event_message_id(event.event_id),
            app_id=event.app_id,
            job_id=None,
            event_type=WebhookEventType.LOW_BALANCE,
            event_data={
                "user_id": payload.user_id,
                "balance": payload.balance,
                "threshold": payload.threshold,
            },
            occurred_at=event.occurred_at,
            now=now or utcnow(),
        )
