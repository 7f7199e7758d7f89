"""The run worker: claims queued runs, calls providers, stages outputs, ends runs.

Flow of one run (each step its own short transaction, the provider call outside any):
1. claim: queued (or lease-expired running) → running with a lease; JobStarted in the outbox.
2. execute: try the model's routes in order; a heartbeat extends the lease and notices a
   cancel flag or a lost lease while the provider works.
3. stage each output at `staging/{app_id}/{job_id}/{index}.png`.
4. finalize: generated + JobGenerated, or failed/cancelled + JobCompleted, with the attempt log.

Several replicas run this loop side by side: `FOR UPDATE SKIP LOCKED` hands each run to one of
them, and a killed process's runs come back once their lease expires.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Protocol
from uuid import UUID, uuid4

from genhub_contracts import (
    ErrorCode,
    ErrorInfo,
    JobGenerated,
    JobSpec,
    JobStarted,
    JobStatus,
    StagedOutput,
)
from genhub_contracts.events import JobGeneratedPayload, JobStartedPayload
from genhub_platform.uow import UnitOfWork

from genhub_orchestrator.adapters.repositories import (
    AttemptRecord,
    CatalogRepository,
    RunRepository,
)
from genhub_orchestrator.adapters.tables import Run
from genhub_orchestrator.config import Settings
from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    GenerationRequest,
    ProviderAdapter,
    ProviderError,
    ProviderTimeout,
    RetryableProviderError,
)
from genhub_orchestrator.domain.routing import (
    AttemptFailure,
    RouteOption,
    final_error,
    order_routes,
    should_try_next,
)
from genhub_orchestrator.domain.runs import CANCELLED_ERROR, RunStatus, settle, should_give_up
from genhub_orchestrator.domain.sizing import InvalidSize, image_size
from genhub_orchestrator.domain.staging import staging_key
from genhub_orchestrator.metrics import PROVIDER_LATENCY, RUNS_FINISHED, RUNS_IN_FLIGHT
from genhub_orchestrator.services.runs import job_completed

log = logging.getLogger(__name__)


class Staging(Protocol):
    """What the worker needs from object storage (genhub_platform.objectstore.ObjectStore)."""

    bucket: str

    async def ensure_bucket(self) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class ClaimedRun:
    job_id: UUID
    app_id: UUID
    spec: JobSpec
    claim: int
    routes: list[RouteOption]


@dataclass
class Execution:
    """What trying the routes produced: images from one provider, or the failures."""

    images: list[GeneratedImage] = field(default_factory=list)
    provider: str | None = None
    failures: list[AttemptFailure] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)


class Interrupt(Enum):
    CANCELLED = "cancelled"  # the job was cancelled while the provider worked
    LOST = "lost"  # another worker holds the run now (our lease lapsed)


@dataclass(frozen=True)
class WorkerOptions:
    max_concurrency: int = 8
    poll_interval_s: float = 0.2
    lease: timedelta = timedelta(seconds=60)
    max_claims: int = 3
    provider_timeout_s: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "WorkerOptions":
        return cls(
            max_concurrency=settings.max_concurrency,
            poll_interval_s=settings.poll_interval_s,
            lease=timedelta(seconds=settings.lease_s),
            max_claims=settings.max_claims,
            provider_timeout_s=settings.provider_timeout_s,
        )


class RunWorker:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        staging: Staging,
        providers: Mapping[str, ProviderAdapter],
        options: WorkerOptions,
        *,
        owner: UUID | None = None,
    ) -> None:
        self._uow = uow_factory
        self._staging = staging
        self._providers = providers
        self._opts = options
        self.owner = owner or uuid4()  # this process's lease identity
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """A run was committed: claim now instead of at the next poll."""
        self._wakeup.set()

    # --- the loop ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        await self._ensure_bucket()
        try:
            while True:
                self._wakeup.clear()  # before claiming, so a wake during the claim is kept
                free = self._opts.max_concurrency - len(self._tasks)
                claimed: list[ClaimedRun] = []
                if free > 0:
                    try:
                        claimed = await self.claim_batch(free)
                    except Exception:
                        log.exception("claiming runs failed; retrying")
                        await asyncio.sleep(1.0)
                        continue
                    for run in claimed:
                        self._spawn(run)
                if claimed and len(self._tasks) < self._opts.max_concurrency:
                    continue  # more may be waiting
                await self._idle()
        finally:
            await self._shutdown()

    def _spawn(self, run: ClaimedRun) -> None:
        task = asyncio.create_task(self._execute_safely(run), name=f"run-{run.job_id}")
        self._tasks.add(task)
        RUNS_IN_FLIGHT.inc()

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            RUNS_IN_FLIGHT.dec()
            self._wakeup.set()  # a slot is free

        task.add_done_callback(done)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=self._opts.poll_interval_s)

    async def _ensure_bucket(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._staging.ensure_bucket()
                return
            except Exception:
                log.warning("object storage not ready; retrying in %.1fs", delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Hand unfinished runs back now rather than after their lease: a deploy stays fast.
        with contextlib.suppress(Exception):
            async with self._uow() as uow:
                released = await RunRepository(uow.session).release(self.owner)
                await uow.commit()
            if released:
                log.info("released %d runs back to the queue", released)

    # --- claim -------------------------------------------------------------------------------

    async def claim_batch(self, limit: int) -> list[ClaimedRun]:
        """Claim up to `limit` runs and announce them (JobStarted) in one transaction.

        Runs that must not execute end right here: cancelled while their worker was gone,
        claimed too often (they keep killing workers), or with no usable route.
        """
        ready: list[ClaimedRun] = []
        async with self._uow() as uow:
            repo = RunRepository(uow.session)
            rows = await repo.claim(limit=limit, owner=self.owner, lease=self._opts.lease)
            if not rows:
                return []
            catalog = CatalogRepository(uow.session)
            for row in rows:
                spec = JobSpec.model_validate(row.spec)
                options = await catalog.routes_for(row.model)
                routes = order_routes(options, available=self._providers)
                if row.cancel_requested:
                    await self._end(uow, row, spec, RunStatus.CANCELLED, CANCELLED_ERROR)
                elif should_give_up(row.claims, self._opts.max_claims):
                    error = ErrorInfo(
                        code=ErrorCode.PROVIDER_ERROR,
                        message=f"The job was abandoned after {row.claims - 1} interrupted runs.",
                    )
                    await self._end(uow, row, spec, RunStatus.FAILED, error)
                elif not routes:
                    await self._end(uow, row, spec, RunStatus.FAILED, final_error([]))
                else:
                    uow.publish(
                        JobStarted.new(
                            app_id=row.app_id,
                            job_id=row.job_id,
                            payload=JobStartedPayload(
                                user_id=spec.user_id,
                                provider=routes[0].provider,
                                attempt=row.claims,
                            ),
                        )
                    )
                    ready.append(ClaimedRun(row.job_id, row.app_id, spec, row.claims, routes))
            await uow.commit()
        return ready

    async def _end(
        self, uow: UnitOfWork, row: Run, spec: JobSpec, status: RunStatus, error: ErrorInfo | None
    ) -> None:
        event = job_completed(
            app_id=row.app_id,
            job_id=row.job_id,
            user_id=spec.user_id,
            status=JobStatus(status.value),
            requested_outputs=spec.input.num_outputs,
            error=error,
            provider=row.provider,
            attempts=row.attempts,
        )
        if await RunRepository(uow.session).finish(row.job_id, status, error=error):
            uow.publish(event)
            RUNS_FINISHED.labels(status.value).inc()

    # --- execute -----------------------------------------------------------------------------

    async def _execute_safely(self, run: ClaimedRun) -> None:
        try:
            await self.execute(run)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Staging or the database failed: the lease runs out and a worker retries the run
            # (bounded by max_claims).
            log.exception("run %s failed unexpectedly; retried after its lease", run.job_id)

    async def execute(self, run: ClaimedRun) -> None:
        work = asyncio.create_task(self._generate(run))
        interrupt = await self._watch(run, work)
        if interrupt is Interrupt.LOST:
            log.warning("run %s was taken over by another worker; dropping our result", run.job_id)
            return
        execution = Execution() if interrupt is Interrupt.CANCELLED else work.result()
        staged: list[StagedOutput] = []
        if execution.images and interrupt is None:
            staged = await self._stage(run, execution.images)
        await self._finalize(run, execution, staged)

    async def _watch(self, run: ClaimedRun, work: "asyncio.Task[Execution]") -> Interrupt | None:
        """Wait for the provider work, extending the lease; stop it on cancel or lost lease."""
        interval = self._opts.lease.total_seconds() / 3
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=interval)
                if done:
                    return None
                async with self._uow() as uow:
                    flag = await RunRepository(uow.session).extend_lease(
                        run.job_id, self.owner, self._opts.lease
                    )
                    await uow.commit()
                if flag is None or flag:
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    return Interrupt.LOST if flag is None else Interrupt.CANCELLED
        except BaseException:
            work.cancel()
            raise

    async def _generate(self, run: ClaimedRun) -> Execution:
        result = Execution()
        spec = run.spec
        try:
            size = image_size(spec.input.aspect_ratio, spec.input.width, spec.input.height)
        except InvalidSize as exc:
            result.failures.append(
                AttemptFailure("-", ErrorCode.INVALID_INPUT, str(exc), retryable=False)
            )
            return result
        for route in run.routes:
            adapter = self._providers[route.provider]
            request = GenerationRequest(
                job_id=run.job_id,
                app_id=run.app_id,
                model=spec.model,
                provider_model_id=route.provider_model_id,
                input=spec.input,
                width=size.width,
                height=size.height,
                num_outputs=spec.input.num_outputs,
                route_settings=route.settings,
            )
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._opts.provider_timeout_s):
                    images = await adapter.generate(request)
                if not images:
                    raise RetryableProviderError(ErrorCode.PROVIDER_ERROR, "no images returned")
                error: ProviderError | None = None
            except TimeoutError:
                error = ProviderTimeout()
            except ProviderError as exc:
                error = exc
            except Exception as exc:  # an adapter bug must not take the worker down
                log.exception("provider %s raised unexpectedly", route.provider)
                error = RetryableProviderError(
                    ErrorCode.PROVIDER_ERROR, f"provider raised {type(exc).__name__}"
                )
            latency_ms = int((time.perf_counter() - started) * 1000)
            outcome = "failed" if error else "succeeded"
            PROVIDER_LATENCY.labels(route.provider, outcome).observe(latency_ms / 1000)
            result.attempts.append(
                AttemptRecord(
                    provider=route.provider,
                    provider_model_id=route.provider_model_id,
                    latency_ms=latency_ms,
                    outcome=outcome,
                    error=ErrorInfo(code=error.code, message=error.message) if error else None,
                )
            )
            result.provider = route.provider
            if error is None:
                result.images = images[: spec.input.num_outputs]
                return result
            failure = AttemptFailure(
                route.provider, error.code, error.message, retryable=error.retryable
            )
            result.failures.append(failure)
            log.info("provider %s failed for job %s: %s", route.provider, run.job_id, error.message)
            if not should_try_next(failure):
                break
        return result

    async def _stage(self, run: ClaimedRun, images: list[GeneratedImage]) -> list[StagedOutput]:
        async def put(index: int, image: GeneratedImage) -> StagedOutput:
            key = staging_key(run.app_id, run.job_id, index, image.content_type)
            await self._staging.put(key, image.data, image.content_type)
            return StagedOutput(
                index=index, bucket=self._staging.bucket, key=key, content_type=image.content_type
            )

        return list(await asyncio.gather(*(put(i, img) for i, img in enumerate(images))))

    # --- finalize ----------------------------------------------------------------------------

    async def _finalize(
        self, run: ClaimedRun, execution: Execution, staged: list[StagedOutput]
    ) -> None:
        spec = run.spec
        async with self._uow() as uow:
            repo = RunRepository(uow.session)
            row = await repo.lock_owned(run.job_id, self.owner)
            if row is None:
                log.warning("run %s is no longer ours; dropping its result", run.job_id)
                return
            outcome = settle(
                cancel_requested=row.cancel_requested,
                generated=bool(staged),
                error=None if staged else final_error(execution.failures),
            )
            attempts = row.attempts + len(execution.attempts)
            await repo.add_attempts(run.job_id, run.app_id, run.claim, execution.attempts)
            if not await repo.finish(
                run.job_id,
                outcome.status,
                error=outcome.error,
                provider=execution.provider,
                add_attempts=len(execution.attempts),
            ):
                return
            if outcome.status is RunStatus.GENERATED:
                uow.publish(
                    JobGenerated.new(
                        app_id=run.app_id,
                        job_id=run.job_id,
                        payload=JobGeneratedPayload(
                            user_id=spec.user_id,
                            provider=execution.provider or "",
                            model=spec.model,
                            requested_outputs=spec.input.num_outputs,
                            output_format=spec.input.output_format.value,
                            staged=staged,
                            attempts=attempts,
                        ),
                    )
                )
            else:
                uow.publish(
                    job_completed(
                        app_id=run.app_id,
                        job_id=run.job_id,
                        user_id=spec.user_id,
                        status=JobStatus(outcome.status.value),
                        requested_outputs=spec.input.num_outputs,
                        error=outcome.error,
                        provider=execution.provider,
                        attempts=attempts,
                    )
                )
            await uow.commit()
        RUNS_FINISHED.labels(outcome.status.value).inc()
        if outcome.status is RunStatus.CANCELLED and staged:
            await self._discard(staged)

    async def _discard(self, staged: list[StagedOutput]) -> None:
        """Best effort: a cancelled job's staged output is never used."""
        for output in staged:
            with contextlib.suppress(Exception):
                await self._staging.delete(output.key)
