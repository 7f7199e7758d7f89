"""Use cases of the run queue driven by events: enqueue a reserved job, cancel a job."""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from genhub_contracts import (
    BudgetExceeded,
    ErrorInfo,
    JobCancelRequested,
    JobCompleted,
    JobSpec,
    JobStatus,
    TokensReserved,
)
from genhub_contracts.events import JobCompletedPayload
from genhub_platform.uow import UnitOfWork
from sqlalchemy import event as sa_event

from genhub_orchestrator.adapters.repositories import (
    CacheRepository,
    CatalogRepository,
    NewRun,
    RunRepository,
)
from genhub_orchestrator.domain.cache import applied_watermark, cache_key
from genhub_orchestrator.domain.routing import squeeze_until
from genhub_orchestrator.domain.runs import (
    CANCELLED_ERROR,
    CancelAction,
    RunStatus,
    cancel_action,
)
from genhub_orchestrator.domain.sizing import InvalidSize, image_size
from genhub_orchestrator.metrics import RUNS_ENQUEUED, RUNS_FINISHED

log = logging.getLogger(__name__)


def after_commit(uow: UnitOfWork, callback: Callable[[], None]) -> None:
    """Run `callback` once this unit of work's transaction has committed (never on rollback).

    Lets a Kafka handler, which must not commit itself, wake the worker loop only once its
    row is visible to the worker's claim.
    """
    sa_event.listen(uow.session.sync_session, "after_commit", lambda _s: callback(), once=True)


def job_completed(
    *,
    app_id: UUID,
    job_id: UUID,
    user_id: str,
    status: JobStatus,
    requested_outputs: int,
    error: ErrorInfo | None,
    provider: str | None = None,
    attempts: int = 0,
) -> JobCompleted:
    return JobCompleted.new(
        app_id=app_id,
        job_id=job_id,
        payload=JobCompletedPayload(
            user_id=user_id,
            status=status,
            requested_outputs=requested_outputs,
            error=error,
            provider=provider,
            attempts=attempts,
        ),
    )


def _new_run(event: TokensReserved, *, cancelled_early: bool) -> NewRun:
    """The run to record for a reserved job (the spec kept as the JSON the event carried)."""
    assert event.job_id is not None
    spec = event.payload.spec
    return NewRun(
        job_id=event.job_id,
        app_id=event.app_id,
        user_id=spec.user_id,
        model=spec.model,
        spec_json=spec.model_dump_json(),
        hold_id=event.payload.hold_id,
        hold_amount=event.payload.amount,
        priority=spec.priority,
        plan=spec.plan.value,
        cache_key=run_cache_key(spec) if spec.uses_cache else None,
        cancelled=CANCELLED_ERROR if cancelled_early else None,
    )


def _cancelled_at_once(uow: UnitOfWork, event: TokensReserved) -> None:
    assert event.job_id is not None
    spec = event.payload.spec
    uow.publish(
        job_completed(
            app_id=event.app_id,
            job_id=event.job_id,
            user_id=spec.user_id,
            status=JobStatus.CANCELLED,
            requested_outputs=spec.input.num_outputs,
            error=CANCELLED_ERROR,
        )
    )
    RUNS_FINISHED.labels(RunStatus.CANCELLED.value).inc()


async def enqueue_run(uow: UnitOfWork, event: TokensReserved) -> bool:
    """Record the reserved job as a queued run. Idempotent on the job id.

    A cancel that overtook this event (another topic) left a tombstone: the run is then
    recorded as cancelled and the job ends at once, so billing voids the hold.
    """
    return bool(await enqueue_runs(uow, [event]))


async def enqueue_runs(
    uow: UnitOfWork,
    events: list[TokensReserved],
    on_queued: Callable[[dict[UUID, JobSpec]], None] | None = None,
) -> int:
    """`enqueue_run` for a batch in a few statements: lock the jobs (against a concurrent
    cancel), look up early cancels, insert the runs (ON CONFLICT DO NOTHING). Returns how many
    runs were queued; `on_queued` gets their specs (the worker keeps them for the claim)."""
    if any(e.job_id is None for e in events):
        raise ValueError("tokens.reserved without a job_id")
    events = list({e.job_id: e for e in events}.values())  # a batch may repeat a job
    repo = RunRepository(uow.session)
    await repo.lock_jobs([e.job_id for e in events if e.job_id])
    early = await repo.pending_cancels([(e.job_id, e.app_id) for e in events if e.job_id])
    runs = [_new_run(e, cancelled_early=(e.job_id, e.app_id) in early) for e in events]
    inserted = await repo.insert_many(runs)
    queued: dict[UUID, JobSpec] = {}
    for event, run in zip(events, runs, strict=True):
        if run.job_id not in inserted:
            log.info("run for job %s already recorded", run.job_id)
        elif run.cancelled is not None:
            _cancelled_at_once(uow, event)
        else:
            queued[run.job_id] = event.payload.spec
    if on_queued is not None and queued:
        on_queued(queued)
    RUNS_ENQUEUED.inc(len(queued))
    return len(queued)


def run_cache_key(spec: JobSpec) -> str | None:
    """The job's prompt-cache key (None when its size is invalid: the run fails later).

    Computed only for jobs that use the cache: a run without a key is never looked up nor
    learned from (`learn_cache` and the claim both need one)."""
    try:
        size = image_size(spec.input.aspect_ratio, spec.input.width, spec.input.height)
    except InvalidSize:
        return None
    stamp = applied_watermark(spec.plan, spec.app.watermark)
    return cache_key(spec.model, size.width, size.height, spec.input, stamp)


async def squeeze_budget(uow: UnitOfWork, event: BudgetExceeded) -> None:
    """An app passed its budget cap: its jobs go cheapest first until the period ends."""
    until = squeeze_until(event.payload.period, event.occurred_at)
    await CatalogRepository(uow.session).squeeze(event.app_id, event.payload.period, until)
    log.info(
        "app %s over budget (%s): cheapest first until %s", event.app_id, event.payload.level, until
    )


async def learn_cache(uow: UnitOfWork, event: JobCompleted) -> bool:
    """Remember a succeeded job's final outputs under its cache key (this app only)."""
    payload = event.payload
    if event.job_id is None or payload.status is not JobStatus.SUCCEEDED or payload.cache_hit:
        return False
    run = await RunRepository(uow.session).get(event.job_id, event.app_id)
    if run is None or run.cache_key is None or run.cache_hit or not payload.outputs:
        return False
    spec = JobSpec.model_validate(run.spec)
    if not spec.uses_cache:
        return False
    outputs = [
        {"index": o.index, "bucket": "", "key": o.key, "content_type": o.content_type}
        for o in payload.outputs
    ]
    await CacheRepository(uow.session).store(
        app_id=event.app_id,
        key=run.cache_key,
        model=run.model,
        job_id=event.job_id,
        outputs=outputs,
        expires_at=datetime.now(UTC) + timedelta(days=spec.app.output_retention_days),
    )
    return True


async def request_cancel(uow: UnitOfWork, event: JobCancelRequested) -> CancelAction:
    """Cancel a job: at once while queued, by flag while running, not at all once final."""
    if event.job_id is None:
        raise ValueError("job.cancel.requested without a job_id")
    job_id, app_id = event.job_id, event.app_id
    repo = RunRepository(uow.session)
    await repo.lock_job(job_id)
    run = await repo.get(job_id, app_id, for_update=True)
    action = cancel_action(RunStatus(run.status) if run else None)
    if action is CancelAction.REMEMBER:
        await repo.remember_cancel(job_id, app_id, event.payload.reason)
    elif action is CancelAction.FLAG:
        await repo.flag_cancel(job_id)
    elif (
        action is CancelAction.END_NOW
        and run is not None
        and await repo.finish(job_id, RunStatus.CANCELLED, error=CANCELLED_ERROR)
    ):
        uow.publish(
            job_completed(
                app_id=app_id,
                job_id=job_id,
                user_id=run.user_id,
                status=JobStatus.CANCELLED,
                requested_outputs=int(run.spec["input"]["num_outputs"]),
                error=CANCELLED_ERROR,
                attempts=run.attempts,
            )
        )
        RUNS_FINISHED.labels(RunStatus.CANCELLED.value).inc()
    log.info("cancel for job %s: %s", job_id, action.value)
    return action
