"""Kafka handlers (group "notifier"): translate events into use-case calls. They never commit."""

from genhub_contracts import JobCompleted, JobRequested, LowBalance, TokensRejected, TokensSettled
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_notifier.services.events import EventRecorder


def register(runtime: Runtime, recorder: EventRecorder) -> None:
    consumer = runtime.consumer

    @consumer.on(JobRequested)
    async def job_requested(event: JobRequested, uow: UnitOfWork) -> None:
        await recorder.remember_job(uow, event)

    @consumer.on(TokensSettled)
    async def tokens_settled(event: TokensSettled, uow: UnitOfWork) -> None:
        await recorder.remember_settlement(uow, event)

    @consumer.on(TokensRejected)
    async def tokens_rejected(event: TokensRejected, uow: UnitOfWork) -> None:
        await recorder.record_rejection(uow, event)

    @consumer.on(JobCompleted)
    async def job_completed(event: JobCompleted, uow: UnitOfWork) -> None:
        await recorder.record_completion(uow, event)

    @consumer.on(LowBalance)
    async def low_balance(event: LowBalance, uow: UnitOfWork) -> None:
        await recorder.record_low_balance(uow, event)
