"""Kafka handlers: translate the event, delegate to the use case. The consumer commits."""

from genhub_contracts import JobCompleted, JobRequested
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_billing import services
from genhub_billing.config import Settings


def register(runtime: Runtime, settings: Settings) -> None:
    @runtime.consumer.on(JobRequested, name="reserve")
    async def on_job_requested(event: JobRequested, uow: UnitOfWork) -> None:
        await services.reserve_for_job(uow, event, hold_ttl_s=settings.hold_ttl_s)

    @runtime.consumer.on(JobCompleted, name="settle")
    async def on_job_completed(event: JobCompleted, uow: UnitOfWork) -> None:
        await services.settle_job(uow, event)
