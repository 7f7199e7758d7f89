"""Kafka handlers (group "notifier"): translate events into use-case calls. They never commit.

The job topics are consumed in batches, each by its own subscriber: one unit of work per
batch, and a backlog on one topic never holds up the others.
"""

from genhub_contracts import JobCompleted, JobRequested, LowBalance, TokensRejected, TokensSettled
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_notifier.services.events import EventRecorder

BATCH = 200


def register(runtime: Runtime, recorder: EventRecorder) -> None:
    consumer = runtime.consumer

    @consumer.on_batch(JobRequested, max_records=BATCH)
    async def job_requested(events: list[JobRequested], uow: UnitOfWork) -> None:
        await recorder.remember_jobs(uow, events)

    @consumer.on_batch(TokensSettled, max_records=BATCH)
    async def tokens_settled(events: list[TokensSettled], uow: UnitOfWork) -> None:
        await recorder.remember_settlements(uow, events)

    @consumer.on_batch(TokensRejected, max_records=BATCH)
    async def tokens_rejected(events: list[TokensRejected], uow: UnitOfWork) -> None:
        await recorder.record_rejections(uow, events)

    @consumer.on_batch(JobCompleted, max_records=BATCH)
    async def job_completed(events: list[JobCompleted], uow: UnitOfWork) -> None:
        await recorder.record_completions(uow, events)

    @consumer.on(LowBalance)
    async def low_balance(event: LowBalance, uow: UnitOfWork) -> None:
        await recorder.record_low_balance(uow, event)
