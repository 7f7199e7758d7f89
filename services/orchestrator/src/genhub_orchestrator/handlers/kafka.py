"""Kafka handlers: translate events into use cases. They never commit (the consumer does)."""

from genhub_contracts import BudgetExceeded, JobCancelRequested, JobCompleted, TokensReserved
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_orchestrator.domain.runs import CancelAction
from genhub_orchestrator.services.runs import (
    after_commit,
    enqueue_runs,
    learn_cache,
    request_cancel,
    squeeze_budget,
)
from genhub_orchestrator.services.worker import RunWorker


def register(runtime: Runtime, worker: RunWorker) -> None:
    # Batches: one transaction for whatever arrived within a few milliseconds.
    @runtime.consumer.on_batch(
        TokensReserved, name="enqueue_run", max_records=500, after_commit=worker.wake
    )
    async def on_tokens_reserved(events: list[TokensReserved], uow: UnitOfWork) -> None:
        await enqueue_runs(uow, events, on_queued=worker.remember_specs)

    @runtime.consumer.on(JobCancelRequested, name="cancel_run")
    async def on_cancel_requested(event: JobCancelRequested, uow: UnitOfWork) -> None:
        action = await request_cancel(uow, event)
        if action is CancelAction.FLAG and event.job_id is not None:
            job_id = event.job_id
            after_commit(uow, lambda: worker.interrupt(job_id))

    @runtime.consumer.on(BudgetExceeded, name="budget_squeeze")
    async def on_budget_exceeded(event: BudgetExceeded, uow: UnitOfWork) -> None:
        await squeeze_budget(uow, event)

    @runtime.consumer.on(JobCompleted, name="learn_cache")
    async def on_job_completed(event: JobCompleted, uow: UnitOfWork) -> None:
        await learn_cache(uow, event)
