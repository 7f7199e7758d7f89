"""Kafka handlers: translate events into use cases. They never commit (the consumer does)."""

from genhub_contracts import JobCancelRequested, TokensReserved
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_orchestrator.services.runs import after_commit, enqueue_run, request_cancel
from genhub_orchestrator.services.worker import RunWorker


def register(runtime: Runtime, worker: RunWorker) -> None:
    @runtime.consumer.on(TokensReserved, name="enqueue_run")
    async def on_tokens_reserved(event: TokensReserved, uow: UnitOfWork) -> None:
        if await enqueue_run(uow, event):
            after_commit(uow, worker.wake)

    @runtime.consumer.on(JobCancelRequested, name="cancel_run")
    async def on_cancel_requested(event: JobCancelRequested, uow: UnitOfWork) -> None:
        await request_cancel(uow, event)
