"""Kafka handlers (group "notifier"): translate events into use-case calls. They never commit."""

from genhub_contracts import JobCompleted, JobRequested, TokensRejected
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_notifier.services import events


def register(runtime: Runtime) -> None:
    consumer = runtime.consumer

    @consumer.on(JobRequested)
    async def job_requested(event: JobRequested, uow: UnitOfWork) -> None:
        await events.remember_job(uow, event)

    @consumer.on(TokensRejected)
    async def tokens_rejected(event: TokensRejected, uow: UnitOfWork) -> None:
        await events.record_rejection(uow, event)

    @consumer.on(JobCompleted)
    async def job_completed(event: JobCompleted, uow: UnitOfWork) -> None:
        await events.record_completion(uow, event)
