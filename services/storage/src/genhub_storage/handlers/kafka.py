"""Kafka handlers: translate events into use-case calls. They never commit."""

from genhub_contracts import JobGenerated, JobRequested
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_storage.services import OutputProcessor, SpecRecorder


def register(runtime: Runtime, processor: OutputProcessor, specs: SpecRecorder) -> None:
    # Every accepted job passes here, so it is consumed in batches: one statement per batch.
    @runtime.consumer.on_batch(JobRequested, name="job_requested")
    async def on_job_requested(events: list[JobRequested], uow: UnitOfWork) -> None:
        await specs.record_many(events, uow)

    @runtime.consumer.on(JobGenerated, name="job_generated")
    async def on_job_generated(event: JobGenerated, uow: UnitOfWork) -> None:
        await processor.complete_job(event, uow)
