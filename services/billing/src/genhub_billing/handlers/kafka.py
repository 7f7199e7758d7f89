"""Kafka handlers: translate the event, delegate to the use case. The consumer commits.

`job.requested` is consumed in batches (one transaction per batch, set-based SQL): that is the
hot path, one per generation request. `job.completed` stays one event per transaction.
"""

from genhub_contracts import JobCompleted, JobRequested
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_billing import services
from genhub_billing.config import Settings


def register(runtime: Runtime, settings: Settings) -> None:
    @runtime.consumer.on_batch(
        JobRequested,
        name="reserve",
        max_records=settings.reserve_batch_max,
        timeout_ms=settings.reserve_batch_timeout_ms,
        # The batch writes its outbox rows in bulk, so the relay is woken here.
        after_commit=runtime.relay.wake,
    )
    async def on_jobs_requested(events: list[JobRequested], uow: UnitOfWork) -> None:
        await services.reserve_batch(uow, events, hold_ttl_s=settings.hold_ttl_s)

    @runtime.consumer.on(JobCompleted, name="settle")
    async def on_job_completed(event: JobCompleted, uow: UnitOfWork) -> None:
        await services.settle_job(uow, event)
