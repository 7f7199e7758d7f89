"""Kafka handlers projecting the job saga into the read-model (consumer group "gateway")."""

from functools import partial

from genhub_contracts import (
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


async def on_tokens_reserved(event: TokensReserved, uow: UnitOfWork) -> None:
    await services.project(
        uow,
        event,
        partial(readmodel.on_reserved, amount=event.payload.amount, at=event.occurred_at),
    )


async def on_tokens_rejected(event: TokensRejected, uow: UnitOfWork) -> None:
    p = event.payload
    await services.project(
        uow,
        event,
        partial(
            readmodel.on_rejected,
            reason=p.reason.value,
            message=p.message,
            balance=p.balance,
            required=p.required,
            at=event.occurred_at,
        ),
    )


async def on_job_started(event: JobStarted, uow: UnitOfWork) -> None:
    p = event.payload
    await services.project(
        uow,
        event,
        partial(readmodel.on_started, provider=p.provider, attempt=p.attempt, at=event.occurred_at),
    )


async def on_job_completed(event: JobCompleted, uow: UnitOfWork) -> None:
    p = event.payload
    await services.project(
        uow,
        event,
        partial(
            readmodel.on_completed,
            status=JobStatus(p.status),
            outputs=[o.model_dump(mode="json") for o in p.outputs],
            error_code=p.error.code.value if p.error else None,
            error_message=p.error.message if p.error else None,
            provider=p.provider,
            attempts=p.attempts,
            at=event.occurred_at,
        ),
    )


async def on_tokens_settled(event: TokensSettled, uow: UnitOfWork) -> None:
    p = event.payload
    await services.project(
        uow,
        event,
        partial(readmodel.on_settled, charged=p.charged, refunded=p.refunded, at=event.occurred_at),
    )


def register(runtime: Runtime) -> None:
    on = runtime.consumer.on
    on(TokensReserved)(on_tokens_reserved)
    on(TokensRejected)(on_tokens_rejected)
    on(JobStarted)(on_job_started)
    on(JobCompleted)(on_job_completed)
    on(TokensSettled)(on_tokens_settled)
