"""Kafka handlers (group "notifier"): translate events into use-case calls. They never commit.

The four job topics share one batch subscription: a fetched batch spanning them is one unit
of work, its handlers called in the order registered here, so a job's request and settlement
are recorded before its end in the same batch is planned. A job's `job.completed` and its
`tokens.settled` (published by billing right after it) usually arrive in the same fetch: the
webhook is planned, leased and sent after one transaction instead of two.
"""

from genhub_contracts import JobCompleted, JobRequested, LowBalance, TokensRejected, TokensSettled
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_notifier.services.events import EventRecorder

BATCH = 200
JOB_EVENTS = "job_events"


def register(runtime: Runtime, recorder: EventRecorder) -> None:
    consumer = runtime.consumer

    @consumer.on_batch(JobRequested, max_records=BATCH, subscription=JOB_EVENTS)
    async def job_requested(events: list[JobRequested], uow: UnitOfWork) -> None:
        await recorder.remember_jobs(uow, events)

    @consumer.on_batch(TokensSettled, max_records=BATCH, subscription=JOB_EVENTS)
    async def tokens_settled(events: list[TokensSettled], uow: UnitOfWork) -> None:
        await recorder.remember_settlements(uow, events)

    @consumer.on_batch(TokensRejected, max_records=BATCH, subscription=JOB_EVENTS)
    async def tokens_rejected(events: list[TokensRejected], uow: UnitOfWork) -> None:
        await recorder.record_rejections(uow, events)

    @consumer.on_batch(JobCompleted, max_records=BATCH, subscription=JOB_EVENTS)
    async def job_completed(events: list[JobCompleted], uow: UnitOfWork) -> None:
        await recorder.record_completions(uow, events)

    @consumer.on(LowBalance)
    async def low_balance(event: LowBalance, uow: UnitOfWork) -> None:
        await recorder.record_low_balance(uow, event)
