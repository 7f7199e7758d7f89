"""Use cases behind the Kafka handlers: remember jobs and settlements, record messages.

All of them are idempotent on their own (ON CONFLICT DO NOTHING, ids derived from the
event), on top of the consumer's inbox de-duplication: a replayed event never adds a second
message or delivery. The list forms take a whole Kafka batch in one unit of work.
"""

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from genhub_contracts import JobCompleted, JobRequested, LowBalance, TokensRejected, TokensSettled
from genhub_platform.uow import UnitOfWork

from genhub_notifier.adapters import repository as repo
from genhub_notifier.domain.body import iso8601
from genhub_notifier.domain.delivery import WebhookEventType, event_message_id, job_message_id
from genhub_notifier.services.fanout import (
    FanoutConfig,
    Handoff,
    NewMessage,
    record_messages,
    resolve_many,
)

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _rejection(event: TokensRejected) -> NewMessage | None:
    if event.job_id is None:
        log.warning("tokens.rejected without job_id ignored")
        return None
    payload = event.payload
    return NewMessage(
        id=job_message_id(event.job_id, WebhookEventType.REJECTED),
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
    )


def _completion(event: JobCompleted) -> NewMessage | None:
    if event.job_id is None:
        log.warning("job.completed without job_id ignored")
        return None
    payload = event.payload
    error = payload.error
    event_type = WebhookEventType.for_status(payload.status)
    return NewMessage(
        id=job_message_id(event.job_id, event_type),
        app_id=event.app_id,
        job_id=event.job_id,
        event_type=event_type,
        event_data={
            "user_id": payload.user_id,
            "error": {"code": error.code.value, "message": error.message} if error else None,
            "completed_at": iso8601(event.occurred_at),
        },
        occurred_at=event.occurred_at,
    )


def _low_balance(event: LowBalance) -> NewMessage:
    payload = event.payload
    return NewMessage(
        id=event_message_id(event.event_id),
        app_id=event.app_id,
        job_id=None,
        event_type=WebhookEventType.LOW_BALANCE,
        event_data={
            "user_id": payload.user_id,
            "balance": payload.balance,
            "threshold": payload.threshold,
        },
        occurred_at=event.occurred_at,
    )


class EventRecorder:
    """`handoff` (the dispatcher): new deliveries are leased to this process in the recording
    transaction and sent as soon as it commits, with no wait for a claim round."""

    def __init__(self, config: FanoutConfig, handoff: Handoff | None = None) -> None:
        self._config = config
        self._handoff = handoff

    async def remember_jobs(
        self, uow: UnitOfWork, events: list[JobRequested], now: datetime | None = None
    ) -> None:
        jobs: list[tuple[UUID, UUID]] = []
        rows: list[dict[str, Any]] = []
        for event in events:
            if event.job_id is None:
                log.warning("job.requested without job_id ignored")
                continue
            spec = event.payload.spec
            rows.append(
                {
                    "job_id": event.job_id,
                    "app_id": event.app_id,
                    "user_id": spec.user_id,
                    "model": spec.model,
                    "webhook_url": str(spec.webhook_url) if spec.webhook_url else None,
                    "metadata": spec.metadata,
                    "requested_at": event.occurred_at,
                }
            )
            jobs.append((event.app_id, event.job_id))
        await repo.lock_jobs(uow.session, [job for _, job in jobs])
        await repo.insert_subscriptions(uow.session, rows)
        # A terminal event may have overtaken these (other topic): release it.
        await self._wake(uow, jobs, now)

    async def remember_settlements(
        self, uow: UnitOfWork, events: list[TokensSettled], now: datetime | None = None
    ) -> None:
        jobs: list[tuple[UUID, UUID]] = []
        rows: list[dict[str, Any]] = []
        for event in events:
            if event.job_id is None:
                continue
            payload = event.payload
            rows.append(
                {
                    "job_id": event.job_id,
                    "app_id": event.app_id,
                    "outcome": payload.outcome,
                    "charged": payload.charged,
                    "refunded": payload.refunded,
                }
            )
            jobs.append((event.app_id, event.job_id))
        await repo.lock_jobs(uow.session, [job for _, job in jobs])
        await repo.insert_settlements(uow.session, rows)
        await self._wake(uow, jobs, now)

    async def _wake(
        self, uow: UnitOfWork, jobs: list[tuple[UUID, UUID]], now: datetime | None
    ) -> None:
        """The facts these jobs' waiting messages needed just arrived (in this transaction):
        resolve them here, so their deliveries are due when this commits, with no trip
        through the waiting-message loop."""
        messages = await repo.lock_waiting_messages_of(uow.session, jobs)
        await resolve_many(uow.session, messages, self._config, now or utcnow(), self._handoff)

    async def record_rejections(
        self, uow: UnitOfWork, events: list[TokensRejected], now: datetime | None = None
    ) -> None:
        await self._record(uow, [_rejection(e) for e in events], now)

    async def record_completions(
        self, uow: UnitOfWork, events: list[JobCompleted], now: datetime | None = None
    ) -> None:
        await self._record(uow, [_completion(e) for e in events], now)

    async def record_low_balance(
        self, uow: UnitOfWork, event: LowBalance, now: datetime | None = None
    ) -> None:
        await self._record(uow, [_low_balance(event)], now)

    async def _record(
        self, uow: UnitOfWork, items: list[NewMessage | None], now: datetime | None
    ) -> None:
        messages = [m for m in items if m is not None]
        created = await record_messages(
            uow.session, self._config, messages, now or utcnow(), self._handoff
        )
        if created:
            log.info("messages recorded", extra={"messages": created})

    # Single-event forms (tests, one-off calls).

    async def remember_job(
        self, uow: UnitOfWork, event: JobRequested, now: datetime | None = None
    ) -> None:
        await self.remember_jobs(uow, [event], now)

    async def remember_settlement(
        self, uow: UnitOfWork, event: TokensSettled, now: datetime | None = None
    ) -> None:
        await self.remember_settlements(uow, [event], now)

    async def record_rejection(
        self, uow: UnitOfWork, event: TokensRejected, now: datetime | None = None
    ) -> None:
        await self.record_rejections(uow, [event], now)

    async def record_completion(
        self, uow: UnitOfWork, event: JobCompleted, now: datetime | None = None
    ) -> None:
        await self.record_completions(uow, [event], now)
