"""Kafka handlers (group "notifier"): translate events into use-case calls. They never commit.

The four job topics are consumed together in batches: a batch spanning them is one unit of
work, so a job's `job.completed` and its `tokens.settled` (published by billing right after
it), usually fetched together, give a webhook that is planned, leased and sent after one
transaction.
"""

from genhub_contracts import JobCompleted, JobRequested, LowBalance, TokensRejected, TokensSettled
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_notifier.services.events import EventRecorder, JobEvent

BATCH = 200


def register(runtime: Runtime, recorder: EventRecorder) -> None:
    consumer = runtime.consumer

    @consumer.on_batch(JobRequested, TokensSettled, TokensRejected, JobCompleted, max_records=BATCH)
    async def job_events(events: list[JobEvent], uow: UnitOfWork) -> None:
        await recorder.record_job_events(uow, events)

    @consumer.on(LowBalance)
    async def low_balance(event: LowBalance, uow: UnitOfWork) -> None:
        await recorder.record_low_balance(uow, event)
