"""Kafka handlers projecting the job saga into the read-model (consumer group "gateway").

Each topic is consumed in batches (whatever a poll returns, up to BATCH): each event becomes
a domain step, each job's steps are folded in delivery order, and one statement writes the
batch (services.project_many). Per message, the consumer machinery and a transaction of its
own cost about as much CPU as accepting the job did. The per-event handlers below do the
same for one event (tests deliver events through them)."""

from collections.abc import Callable
from typing import Any, TypeVar

from genhub_contracts import (
    Envelope,
    JobCompleted,
    JobStarted,
    JobStatus,
    TokensRejected,
    TokensReserved,
    TokensSettled,
)
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_gateway import services
from genhub_gateway.domain import readmodel

BATCH = 500
# How long a poll waits for records (it returns as soon as some arrive). The five topics
# share one subscriber (EventConsumer), each route its own unit of work per fetched batch.
BATCH_WAIT_MS = 100
EventT = TypeVar("EventT", bound=Envelope[Any])


def reserved(event: TokensReserved) -> readmodel.Reserved:
    return readmodel.Reserved(amount=event.payload.amount, at=event.occurred_at)


def rejected(event: TokensRejected) -> readmodel.Rejected:
    p = event.payload
    return readmodel.Rejected(
        reason=p.reason.value,
        message=p.message,
        balance=p.balance,
        required=p.required,
        at=event.occurred_at,
    )


def started(event: JobStarted) -> readmodel.Started:
    p = event.payload
    return readmodel.Started(provider=p.provider, attempt=p.attempt, at=event.occurred_at)


def completed(event: JobCompleted) -> readmodel.Completed:
    p = event.payload
    return readmodel.Completed(
        status=JobStatus(p.status),
        outputs=[o.model_dump(mode="json") for o in p.outputs],
        error_code=p.error.code.value if p.error else None,
        error_message=p.error.message if p.error else None,
        provider=p.provider,
        attempts=p.attempts,
        at=event.occurred_at,
    )


def settled(event: TokensSettled) -> readmodel.Settled:
    p = event.payload
    return readmodel.Settled(charged=p.charged, refunded=p.refunded, at=event.occurred_at)


async def on_tokens_reserved(event: TokensReserved, uow: UnitOfWork) -> None:
    await services.project(uow, event, reserved(event))


async def on_tokens_rejected(event: TokensRejected, uow: UnitOfWork) -> None:
    await services.project(uow, event, rejected(event))


async def on_job_started(event: JobStarted, uow: UnitOfWork) -> None:
    await services.project(uow, event, started(event))


async def on_job_completed(event: JobCompleted, uow: UnitOfWork) -> None:
    await services.project(uow, event, completed(event))


async def on_tokens_settled(event: TokensSettled, uow: UnitOfWork) -> None:
    await services.project(uow, event, settled(event))


def _register_batch(
    runtime: Runtime,
    event_cls: type[EventT],
    step_of: Callable[[EventT], readmodel.Step],
    name: str,
) -> None:
    async def project_batch(events: list[EventT], uow: UnitOfWork) -> None:
        await services.project_many(uow, [(event, step_of(event)) for event in events])

    # The inbox keeps the per-event handlers' names, so deliveries they recorded still count.
    runtime.consumer.on_batch(event_cls, name=name, max_records=BATCH, timeout_ms=BATCH_WAIT_MS)(
        project_batch
    )


def register(runtime: Runtime) -> None:
    _register_batch(runtime, TokensReserved, reserved, on_tokens_reserved.__name__)
    _register_batch(runtime, TokensRejected, rejected, on_tokens_rejected.__name__)
    _register_batch(runtime, JobStarted, started, on_job_started.__name__)
    _register_batch(runtime, JobCompleted, completed, on_job_completed.__name__)
    _register_batch(runtime, TokensSettled, settled, on_tokens_settled.__name__)
