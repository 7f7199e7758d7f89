"""Kafka handlers: translate events into use-case calls. They never commit."""

from genhub_contracts import JobGenerated
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_storage.services import OutputProcessor


def register(runtime: Runtime, processor: OutputProcessor) -> None:
    @runtime.consumer.on(JobGenerated, name="job_generated")
    async def on_job_generated(event: JobGenerated, uow: UnitOfWork) -> None:
        await processor.complete_job(event, uow)
