"""Use cases behind the Kafka handlers: remember jobs and settlements, record messages.

All of them are idempotent on their own (ON CONFLICT DO NOTHING, ids derived from the
event), on top of the consumer's inbox de-duplication: a replayed event never adds a second
message or delivery. `record_job_events` takes a whole Kafka batch in one unit of work.
"""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

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


def _rejection(event: TokensRejected) -> NewMessage:
    assert event.job_id is not None
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


def _completion(event: JobCompleted) -> NewMessage:
    assert event.job_id is not None
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


JobEvent = JobRequested | TokensSettled | TokensRejected | JobCompleted


def _subscription_row(event: JobRequested) -> dict[str, Any]:
    spec = event.payload.spec
    return {
        "job_id": event.job_id,
        "app_id": event.app_id,
        "user_id": spec.user_id,
        "model": spec.model,
        "webhook_url": str(spec.webhook_url) if spec.webhook_url else None,
        "metadata": spec.metadata,
        "requested_at": event.occurred_at,
    }


def _settlement_row(event: TokensSettled) -> dict[str, Any]:
    payload = event.payload
    return {
        "job_id": event.job_id,
        "app_id": event.app_id,
        "outcome": payload.outcome,
        "charged": payload.charged,
        "refunded": payload.refunded,
    }


class EventRecorder:
    """`handoff` (the dispatcher): new deliveries are leased to this process in the recording
    transaction and sent as soon as it commits, with no wait for a claim round."""

    def __init__(self, config: FanoutConfig, handoff: Handoff | None = None) -> None:
        self._config = config
        self._handoff = handoff

    async def record_job_events(
        self, uow: UnitOfWork, events: Sequence[JobEvent], now: datetime | None = None
    ) -> None:
        """One Kafka batch of the job topics in one unit of work: the facts (requests,
        settlements) first, then the messages (rejections, job ends) planned with them. A
        job's end and its settlement in the same batch give a delivery at once; a message
        recorded earlier that waited for a fact arriving here is released."""
        now = now or utcnow()
        facts: list[JobRequested | TokensSettled] = []
        messages: list[NewMessage] = []
        for event in events:
            if event.job_id is None:
                log.warning("%s without job_id ignored", event.TYPE)
            elif isinstance(event, JobRequested | TokensSettled):
                facts.append(event)
            else:
                messages.append(
                    _rejection(event) if isinstance(event, TokensRejected) else _completion(event)
                )
        # Every job of the batch locked once, in id order (see repo.lock_jobs).
        await repo.lock_jobs(uow.session, [e.job_id for e in events if e.job_id is not None])
        await repo.insert_subscriptions(
            uow.session, [_subscription_row(e) for e in facts if isinstance(e, JobRequested)]
        )
        await repo.insert_settlements(
            uow.session, [_settlement_row(e) for e in facts if isinstance(e, TokensSettled)]
        )
        if facts:
            jobs = list({(e.app_id, e.job_id) for e in facts if e.job_id is not None})
            waiting = await repo.lock_waiting_messages_of(uow.session, jobs)
            await resolve_many(uow.session, waiting, self._config, now, self._handoff)
        await self._record(uow, messages, now, jobs_locked=True)

    async def record_low_balance(
        self, uow: UnitOfWork, event: LowBalance, now: datetime | None = None
    ) -> None:
        await self._record(uow, [_low_balance(event)], now or utcnow())

    async def _record(
        self,
        uow: UnitOfWork,
        messages: list[NewMessage],
        now: datetime,
        *,
        jobs_locked: bool = False,
    ) -> None:
        created = await record_messages(
            uow.session, self._config, messages, now, self._handoff, jobs_locked=jobs_locked
        )
        if created:
            log.info("messages recorded", extra={"messages": created})

    # Single-event forms (tests, one-off calls).

    async def remember_job(
        self, uow: UnitOfWork, event: JobRequested, now: datetime | None = None
    ) -> None:
        await self.record_job_events(uow, [event], now)

    async def remember_settlement(
        self, uow: UnitOfWork, event: TokensSettled, now: datetime | None = None
    ) -> None:
        await self.record_job_events(uow, [event], now)

    async def record_rejection(
        self, uow: UnitOfWork, event: TokensRejected, now: datetime | None = None
    ) -> None:
        await self.record_job_events(uow, [event], now)

    async def record_completion(
        self, uow: UnitOfWork, event: JobCompleted, now: datetime | None = None
    ) -> None:
        await self.record_job_events(uow, [event], now)
