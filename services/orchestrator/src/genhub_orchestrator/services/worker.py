"""The run worker: claims queued runs, calls providers, stages outputs, ends runs.

Flow of one run (each step its own short transaction, provider calls outside any):
1. claim: under the claim lock, pick runs that fit their app's plan limit (no head-of-line
   blocking across apps, `domain.scheduling`), mark them running with a lease. A cache hit
   ends right here (JobGenerated with the cached outputs); otherwise JobStarted is published
   (after the prompt enhancement when the job asked for one).
2. execute: routes in tier-aware order; per route, retries with backoff on retryable errors,
   each call under the provider's timeout, concurrency cap and circuit breaker. One heartbeat
   statement per interval extends the leases of every run this process has at a provider and
   notices cancel flags and lost leases; a cancel in this process interrupts at once.
   Interrupting a run cancels its task's provider call (the adapter sends the provider's
   cancel call).
3. stage each output at `staging/{app_id}/{job_id}/{index}.png`.
4. finalize: generated + JobGenerated, or failed/cancelled + JobCompleted, with the attempt log.

Several replicas run this loop side by side; a killed process's runs come back once their
lease expires.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol
from uuid import UUID, uuid4

from genhub_contracts import (
    ErrorCode,
    ErrorInfo,
    JobCompleted,
    JobGenerated,
    JobSpec,
    JobStarted,
    JobStatus,
    StagedOutput,
)
from genhub_contracts.events import JobGeneratedPayload, JobStartedPayload
from genhub_platform.aio import wait_event
from genhub_platform.uow import UnitOfWork

from genhub_orchestrator.adapters.inputs import InputFetcher
from genhub_orchestrator.adapters.llm import PromptEnhancer, enhance_or_keep
from genhub_orchestrator.adapters.providers import ProviderRegistry
from genhub_orchestrator.adapters.repositories import (
    AttemptRecord,
    CacheRepository,
    CatalogRepository,
    CatalogSnapshot,
    Ending,
    FinishRecord,
    ProviderInfo,
    RunRepository,
    StartedRun,
)
from genhub_orchestrator.config import Settings
from genhub_orchestrator.domain.providers import (
    GeneratedImage,
    GenerationRequest,
    InputImage,
    ProviderError,
    ProviderTimeout,
    RetryableProviderError,
    TerminalProviderError,
)
from genhub_orchestrator.domain.resilience import (
    BreakerConfig,
    CircuitBreaker,
    RetryPolicy,
    backoff_delay,
)
from genhub_orchestrator.domain.routing import (
    AttemptFailure,
    RouteOption,
    cheapest_first,
    final_error,
    order_routes,
)
from genhub_orchestrator.domain.runs import (
    CANCELLED_ERROR,
    Outcome,
    RunStatus,
    settle,
    should_give_up,
)
from genhub_orchestrator.domain.scheduling import pick
from genhub_orchestrator.domain.sizing import InvalidSize, image_size
from genhub_orchestrator.domain.staging import staging_key
from genhub_orchestrator.metrics import (
    CACHE_HIT_RATIO,
    CACHE_LOOKUPS,
    PROVIDER_ATTEMPTS,
    PROVIDER_LATENCY,
    RUNS_FINISHED,
    RUNS_IN_FLIGHT,
)
from genhub_orchestrator.services.health import HealthBoard
from genhub_orchestrator.services.runs import job_completed

log = logging.getLogger(__name__)

# Failures that say nothing about the provider's health (the request was the problem).
NOT_PROVIDER_FAULTS = frozenset({ErrorCode.CONTENT_REJECTED, ErrorCode.INVALID_INPUT})


class Staging(Protocol):
    """What the worker needs from object storage (genhub_platform.objectstore.ObjectStore)."""

    bucket: str

    async def ensure_bucket(self) -> None: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class RoutePlan:
    """How to call one route, worked out once per claim (not per attempt): the adapter, the
    retry policy and timeout from the provider's settings under the route's, the breaker."""

    adapter: Any
    policy: RetryPolicy
    timeout_s: float
    breaker: CircuitBreaker
    max_concurrency: int


@dataclass(frozen=True)
class ClaimedRun:
    job_id: UUID
    app_id: UUID
    spec: JobSpec
    claim: int
    routes: list[RouteOption]
    plans: list[RoutePlan | None]  # one per route, in order (None: no usable adapter)
    announce: bool = False  # JobStarted still to publish (after the prompt enhancement)
    providers: dict[str, ProviderInfo] = field(default_factory=dict)


@dataclass
class Execution:
    """What trying the routes produced: images from one provider, or the failures."""

    images: list[GeneratedImage] = field(default_factory=list)
    provider: str | None = None
    cost_usd: Decimal = Decimal(0)
    failures: list[AttemptFailure] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)


FINISH_BATCH = 256
FINISH_GATHER = 32  # while other runs are in flight, a smaller batch waits...
FINISH_GATHER_S = 0.002  # ...this long once for more to finish
CLAIM_BATCH = 16  # while busy, claim once at least this many slots are free...
CLAIM_GATHER_S = 0.005  # ...or after this short wait
SPEC_MEMO = 50_000  # specs of runs this process enqueued, kept for their claim


@dataclass
class _Held:
    """A run at its providers: the task to interrupt, and why it was (once it was)."""

    task: "asyncio.Task[Any]"
    interrupt: "Interrupt | None" = None


@dataclass
class _Finished:
    run: ClaimedRun
    execution: Execution
    staged: list[StagedOutput]
    result: "asyncio.Future[RunStatus | None]"


class Interrupt(Enum):
    CANCELLED = "cancelled"  # the job was cancelled while the provider worked
    LOST = "lost"  # another worker holds the run now (our lease lapsed)


@dataclass(frozen=True)
class WorkerOptions:
    max_concurrency: int = 8
    poll_interval_s: float = 0.2
    lease: timedelta = timedelta(seconds=10)
    heartbeat_s: float = 1.0
    max_claims: int = 3
    provider_timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    catalog_ttl_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "WorkerOptions":
        return cls(
            max_concurrency=settings.max_concurrency,
            poll_interval_s=settings.poll_interval_s,
            lease=timedelta(seconds=settings.lease_s),
            heartbeat_s=settings.heartbeat_s,
            max_claims=settings.max_claims,
            provider_timeout_s=settings.provider_timeout_s,
            retry=RetryPolicy(
                max_retries=settings.max_retries, base_delay_s=settings.retry_base_delay_s
            ),
            breaker=BreakerConfig(
                failure_threshold=settings.breaker_failure_threshold,
                cooldown_s=settings.breaker_cooldown_s,
            ),
            catalog_ttl_s=settings.catalog_ttl_s,
        )


class RunWorker:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        staging: Staging,
        registry: ProviderRegistry,
        options: WorkerOptions,
        *,
        inputs: InputFetcher | None = None,
        enhancer: PromptEnhancer | None = None,
        owner: UUID | None = None,
    ) -> None:
        self._uow = uow_factory
        self._staging = staging
        self._registry = registry
        self._opts = options
        self._inputs = inputs
        self._enhancer = enhancer
        self.owner = owner or uuid4()  # this process's lease identity
        self.health = HealthBoard(uow_factory, options.breaker)
        self._wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[UUID, _Held] = {}  # runs at their providers, for the heartbeat
        self._heartbeat: asyncio.Task[None] | None = None
        self._specs: dict[UUID, JobSpec] = {}  # enqueued here, not claimed yet
        self._catalog: CatalogSnapshot | None = None
        self._catalog_at = 0.0
        self._caps: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self._cache_lookups = 0
        self._cache_hits = 0
        self._finished: list[_Finished] = []
        self._flusher: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A run was committed: claim now instead of at the next poll."""
        self._wakeup.set()

    def interrupt(self, job_id: UUID) -> None:
        """A cancel for a run this process executes (its flag is committed): stop its provider
        call now."""
        held = self._held.get(job_id)
        if held is not None:
            self._stop(held, Interrupt.CANCELLED)

    def remember_specs(self, specs: dict[UUID, JobSpec]) -> None:
        """Specs of runs just queued by this process: their claim here need not read and parse
        them again (the row stores exactly this spec). Bounded: the oldest go first."""
        memo = self._specs
        memo.update(specs)
        while len(memo) > SPEC_MEMO:
            del memo[next(iter(memo))]

    def describe(self) -> dict[str, Any]:
        return {"owner": str(self.owner), "in_flight": len(self._tasks)}

    def invalidate_catalog(self) -> None:
        self._catalog = None

    # --- the loop ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        await self._ensure_bucket()
        try:
            while True:
                self._wakeup.clear()  # before claiming, so a wake during the claim is kept
                free = self._opts.max_concurrency - len(self._tasks)
                if 0 < free < CLAIM_BATCH and self._tasks:
                    # Busy: let a few more slots free up so one claim takes several runs.
                    await asyncio.sleep(CLAIM_GATHER_S)
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

    async def health_forever(self, interval_s: float = 1.0) -> None:
        """Publish health changes that happen without traffic (an open circuit cooling down)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.health.publish_changes()
            except Exception:
                log.exception("publishing provider health failed")

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
        await wait_event(self._wakeup, self._opts.poll_interval_s)

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
        if self._heartbeat is not None:
            tasks.append(self._heartbeat)
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

    async def catalog(self, uow: UnitOfWork) -> CatalogSnapshot:
        now = time.monotonic()
        if self._catalog is None or now - self._catalog_at > self._opts.catalog_ttl_s:
            self._catalog = await CatalogRepository(uow.session).snapshot()
            self._catalog_at = now
        return self._catalog

    # --- claim -------------------------------------------------------------------------------

    async def claim_batch(self, limit: int) -> list[ClaimedRun]:
        """Claim up to `limit` runs and announce them (JobStarted) in one transaction.

        Runs that must not execute end right here: cancelled while their worker was gone,
        claimed too often (they keep killing workers), no usable route, or a cache hit.
        """
        ready: list[ClaimedRun] = []
        async with self._uow() as uow:
            repo = RunRepository(uow.session)
            view = await repo.claim_view(slots=limit)
            if not view.candidates:
                return []
            chosen = pick(view.candidates, running=view.running, limits=view.limits, slots=limit)
            ids = [c.job_id for c in chosen]
            known = {j: self._specs[j] for j in ids if j in self._specs}
            rows = await repo.start(ids, owner=self.owner, lease=self._opts.lease, known=known)
            for job_id in known:
                self._specs.pop(job_id, None)
            if not rows:
                await uow.commit()
                return []
            catalog = await self.catalog(uow)
            usable = self._usable(catalog)  # once per claim: adapters looked up per provider
            plans: dict[int, RoutePlan | None] = {}  # per route object, for this claim
            for row in rows:
                run = await self._prepare(uow, row, catalog, usable, plans)
                if run is not None:
                    ready.append(run)
            await uow.commit()
        return ready

    def _usable(self, catalog: CatalogSnapshot) -> set[str]:
        return {
            name
            for name, info in catalog.providers.items()
            if info.enabled and self._registry.adapter(info.spec) is not None
        }

    async def _prepare(
        self,
        uow: UnitOfWork,
        row: StartedRun,
        catalog: CatalogSnapshot,
        usable: set[str],
        plans: dict[int, RoutePlan | None],
    ) -> ClaimedRun | None:
        spec = row.spec
        if row.cancel_requested:
            await self._end(uow, row, spec, RunStatus.CANCELLED, CANCELLED_ERROR)
            return None
        if should_give_up(row.claims, self._opts.max_claims):
            message = f"The job was abandoned after {row.claims - 1} interrupted runs."
            error = ErrorInfo(code=ErrorCode.PROVIDER_ERROR, message=message)
            await self._end(uow, row, spec, RunStatus.FAILED, error)
            return None
        model = catalog.models.get(spec.model)
        if (
            spec.input.images
            and model is not None
            and (
                "image-to-image" not in model.capabilities
                or len(spec.input.images) > model.max_input_images
            )
        ):
            error = ErrorInfo(
                code=ErrorCode.INVALID_INPUT,
                message=f"Model {spec.model} takes at most {model.max_input_images} input images.",
            )
            await self._end(uow, row, spec, RunStatus.FAILED, error)
            return None
        if (
            spec.uses_cache
            and row.cache_key
            and row.claims == 1
            and await self._serve_from_cache(uow, row, spec)
        ):
            return None
        routes = order_routes(
            catalog.routes.get(spec.model, []),
            cheapest_first=cheapest_first(spec.plan, budget_squeezed=row.squeezed),
            available=usable,
        )
        if not routes:
            await self._end(uow, row, spec, RunStatus.FAILED, final_error([]))
            return None
        announce = spec.wants_enhancement and self._enhancer is not None
        if not announce:
            uow.publish(self._started(row.app_id, row.job_id, spec, routes[0].provider, row.claims))
        providers = {r.provider: catalog.providers[r.provider] for r in routes}
        for route in routes:  # the route objects live as long as this claim's catalog
            if id(route) not in plans:
                plans[id(route)] = self._plan(route, providers[route.provider])
        route_plans = [plans[id(route)] for route in routes]
        return ClaimedRun(
            row.job_id, row.app_id, spec, row.claims, routes, route_plans, announce, providers
        )

    def _plan(self, route: RouteOption, info: ProviderInfo | None) -> RoutePlan | None:
        adapter = self._registry.adapter(info.spec) if info else None
        if info is None or adapter is None:
            return None
        settings = {**info.spec.settings, **route.settings}
        return RoutePlan(
            adapter=adapter,
            policy=RetryPolicy.from_settings(settings, self._opts.retry),
            timeout_s=float(
                settings.get("timeout_s") or info.timeout_s or self._opts.provider_timeout_s
            ),
            breaker=self.health.breaker(route.provider, info.spec.settings),
            max_concurrency=info.max_concurrency,
        )

    @staticmethod
    def _started(
        app_id: UUID,
        job_id: UUID,
        spec: JobSpec,
        provider: str,
        attempt: int,
        enhanced: str | None = None,
    ) -> JobStarted:
        return JobStarted.new(
            app_id=app_id,
            job_id=job_id,
            payload=JobStartedPayload(
                user_id=spec.user_id, provider=provider, attempt=attempt, enhanced_prompt=enhanced
            ),
        )

    async def _serve_from_cache(self, uow: UnitOfWork, row: StartedRun, spec: JobSpec) -> bool:
        """A cache hit: the cached outputs become this job's staged objects, no provider call."""
        assert row.cache_key is not None
        cache = CacheRepository(uow.session)
        entry = await cache.lookup(row.app_id, row.cache_key)
        self._cache_lookups += 1
        CACHE_LOOKUPS.labels("hit" if entry else "miss").inc()
        if entry is None:
            CACHE_HIT_RATIO.set(self._cache_hits / self._cache_lookups)
            return False
        self._cache_hits += 1
        CACHE_HIT_RATIO.set(self._cache_hits / self._cache_lookups)
        staged = [
            StagedOutput.model_validate({**o, "bucket": o.get("bucket") or self._staging.bucket})
            for o in entry.outputs
        ]
        if not await RunRepository(uow.session).finish(
            row.job_id, RunStatus.GENERATED, provider="cache", cost_usd=Decimal(0), cache_hit=True
        ):
            return True
        await cache.hit(row.app_id, row.cache_key)
        uow.publish(self._started(row.app_id, row.job_id, spec, "cache", row.claims))
        uow.publish(
            JobGenerated.new(
                app_id=row.app_id,
                job_id=row.job_id,
                payload=JobGeneratedPayload(
                    user_id=spec.user_id,
                    provider="cache",
                    model=spec.model,
                    requested_outputs=spec.input.num_outputs,
                    output_format=spec.input.output_format.value,
                    staged=staged,
                    attempts=0,
                    cache_hit=True,
                    provider_cost_usd="0",
                ),
            )
        )
        RUNS_FINISHED.labels(RunStatus.GENERATED.value).inc()
        return True

    async def _end(
        self,
        uow: UnitOfWork,
        row: StartedRun,
        spec: JobSpec,
        status: RunStatus,
        error: ErrorInfo | None,
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
        held = self._held[run.job_id] = _Held(self._current_task())
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._heartbeat_while_held())
        try:
            execution = await self._generate(run)
        except asyncio.CancelledError:
            # Ours (cancel flag, lost lease) unless something else cancelled too (shutdown).
            if held.interrupt is None or held.task.uncancel() > 0:
                raise
            execution = Execution()
        else:
            if held.interrupt is not None:  # the call swallowed our cancel and returned
                held.task.uncancel()
        finally:
            if self._held.get(run.job_id) is held:
                del self._held[run.job_id]
        if held.interrupt is Interrupt.LOST:
            log.warning("run %s was taken over by another worker; dropping our result", run.job_id)
            return
        staged: list[StagedOutput] = []
        if execution.images and held.interrupt is None:
            staged = await self._stage(run, execution.images)
        await self._finalize(run, execution, staged)

    @staticmethod
    def _current_task() -> "asyncio.Task[Any]":
        task = asyncio.current_task()
        assert task is not None
        return task

    @staticmethod
    def _stop(held: _Held, why: Interrupt) -> None:
        if held.interrupt is None:
            held.interrupt = why
            held.task.cancel()

    async def _heartbeat_while_held(self) -> None:
        """Extend the leases of the runs at their providers, all in one statement per
        interval, while there are any; interrupt those cancelled or lost meanwhile."""
        interval = min(self._opts.lease.total_seconds() / 3, self._opts.heartbeat_s)
        while self._held:
            await asyncio.sleep(interval)
            held = {job: h for job, h in self._held.items() if h.interrupt is None}
            if not held:
                continue
            try:
                async with self._uow() as uow:
                    flags = await RunRepository(uow.session).extend_leases(
                        list(held), self.owner, self._opts.lease
                    )
                    await uow.commit()
            except Exception:  # the next beat retries; a lapsed lease is noticed then
                log.exception("extending the leases of %d runs failed", len(held))
                continue
            for job_id, item in held.items():
                if self._held.get(job_id) is not item:
                    continue  # its provider call ended meanwhile
                flag = flags.get(job_id)
                if flag is None or flag:
                    self._stop(item, Interrupt.LOST if flag is None else Interrupt.CANCELLED)

    async def _generate(self, run: ClaimedRun) -> Execution:
        result = Execution()
        spec = run.spec
        try:
            size = image_size(spec.input.aspect_ratio, spec.input.width, spec.input.height)
            images: tuple[InputImage, ...] = ()
            if spec.input.images:
                if self._inputs is None:
                    raise TerminalProviderError(ErrorCode.INVALID_INPUT, "input images unsupported")
                images = await self._inputs.fetch(run.app_id, spec.input.images)
        except InvalidSize as exc:
            result.failures.append(AttemptFailure("-", ErrorCode.INVALID_INPUT, str(exc), False))
            return result
        except ProviderError as exc:
            result.failures.append(AttemptFailure("-", exc.code, exc.message, exc.retryable))
            return result
        prompt = None
        if run.announce:
            prompt = await enhance_or_keep(self._enhancer, spec.input.prompt)
            async with self._uow() as uow:
                if prompt is not None:
                    await RunRepository(uow.session).set_enhanced_prompt(run.job_id, prompt)
                uow.publish(
                    self._started(
                        run.app_id, run.job_id, spec, run.routes[0].provider, run.claim, prompt
                    )
                )
                await uow.commit()
        for route, plan in zip(run.routes, run.plans, strict=True):
            if plan is None:
                continue
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
                prompt=prompt,
                images=images,
            )
            breaker = plan.breaker
            retry = 0
            while True:
                if not breaker.allow(self.health.now()):
                    result.failures.append(
                        AttemptFailure(
                            route.provider, ErrorCode.PROVIDER_ERROR, "circuit open", True
                        )
                    )
                    break
                outcome = await self._attempt(
                    plan.adapter, request, route, plan.timeout_s, plan.max_concurrency
                )
                error, images_out, record = outcome
                result.attempts.append(record)
                if error is None or error.code not in NOT_PROVIDER_FAULTS:
                    breaker.record(success=error is None, now=self.health.now())
                else:
                    breaker.release_probe()
                if self.health.changed(route.provider):
                    await self._publish_health()
                if error is None:
                    result.images = images_out[: spec.input.num_outputs]
                    result.provider = route.provider
                    result.cost_usd = route.cost_usd
                    return result
                result.provider = route.provider
                result.failures.append(
                    AttemptFailure(route.provider, error.code, error.message, error.retryable)
                )
                log.info(
                    "provider %s failed for job %s: %s", route.provider, run.job_id, error.message
                )
                if not error.retryable:
                    return result
                retry += 1
                delay = backoff_delay(retry, plan.policy, retry_after_s=error.retry_after_s)
                if delay is None:
                    break
                await asyncio.sleep(delay)
        return result

    async def _publish_health(self) -> None:
        try:
            await self.health.publish_changes()
        except Exception:
            log.exception("publishing provider health failed")

    def _cap(self, provider: str, cap: int) -> asyncio.Semaphore | None:
        if cap <= 0:
            return None
        current = self._caps.get(provider)
        if current is None or current[0] != cap:
            current = self._caps[provider] = (cap, asyncio.Semaphore(cap))
        return current[1]

    async def _attempt(
        self,
        adapter: Any,
        request: GenerationRequest,
        route: RouteOption,
        timeout_s: float,
        cap: int,
    ) -> tuple[ProviderError | None, list[GeneratedImage], AttemptRecord]:
        task_ids: list[str] = []
        images: list[GeneratedImage] = []
        error: ProviderError | None = None
        semaphore = self._cap(route.provider, cap)
        started = time.perf_counter()
        try:
            async with semaphore if semaphore is not None else contextlib.nullcontext():
                started = time.perf_counter()  # waiting for a slot is not provider latency
                async with asyncio.timeout(timeout_s):
                    images = await adapter.generate(request, task_ids.append)
            if not images:
                raise RetryableProviderError(ErrorCode.PROVIDER_ERROR, "no images returned")
        except TimeoutError:
            error = ProviderTimeout(f"{route.provider} did not answer within {timeout_s:g}s")
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
        PROVIDER_ATTEMPTS.labels(route.provider, outcome, error.code.value if error else "").inc()
        task_id = task_ids[-1] if task_ids else (error.task_id if error else None)
        record = AttemptRecord(
            provider=route.provider,
            provider_model_id=route.provider_model_id,
            latency_ms=latency_ms,
            outcome=outcome,
            error=ErrorInfo(code=error.code, message=error.message[:1000]) if error else None,
            model=request.model,
            provider_task_id=task_id,
            cost_usd=route.cost_usd if error is None else Decimal(0),
        )
        return error, images, record

    async def _stage(self, run: ClaimedRun, images: list[GeneratedImage]) -> list[StagedOutput]:
        async def put(index: int, image: GeneratedImage) -> StagedOutput:
            key = staging_key(run.app_id, run.job_id, index, image.content_type)
            await self._staging.put(key, image.data, image.content_type)
            return StagedOutput(
                index=index, bucket=self._staging.bucket, key=key, content_type=image.content_type
            )

        if len(images) == 1:  # the usual case: no task per object
            return [await put(0, images[0])]
        return list(await asyncio.gather(*(put(i, img) for i, img in enumerate(images))))

    # --- finalize ----------------------------------------------------------------------------

    async def _finalize(
        self, run: ClaimedRun, execution: Execution, staged: list[StagedOutput]
    ) -> None:
        """Hand the result to the batched writer and wait for its transaction."""
        item = _Finished(run, execution, staged, asyncio.get_running_loop().create_future())
        self._finished.append(item)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_finished())
        status = await item.result
        if status is not None:
            RUNS_FINISHED.labels(status.value).inc()
        if status is RunStatus.CANCELLED and staged:
            await self._discard(staged)

    async def _flush_finished(self) -> None:
        """Write finished runs, many per transaction, until none are waiting.

        Under load the results of many runs gather while a transaction is in flight and go
        into the next one together: a handful of statements per batch instead of per run.
        """
        while self._finished:
            await asyncio.sleep(0)  # let runs finishing in this loop iteration join the batch
            if len(self._finished) < FINISH_GATHER and len(self._tasks) > len(self._finished):
                # Busy: a few more results share the transaction (fewer round trips per run).
                await asyncio.sleep(FINISH_GATHER_S)
            batch, self._finished = self._finished[:FINISH_BATCH], self._finished[FINISH_BATCH:]
            try:
                statuses = await self._write_finished(batch)
            except Exception as exc:  # the runs stay running: their lease runs out, retried
                for item in batch:
                    if not item.result.done():
                        item.result.set_exception(exc)
                continue
            for item, status in zip(batch, statuses, strict=True):
                if not item.result.done():
                    item.result.set_result(status)

    async def _write_finished(self, batch: list["_Finished"]) -> list[RunStatus | None]:
        """One transaction for the batch: end the runs still ours (one statement), publish
        each one's final event."""
        records: list[FinishRecord] = []
        for item in batch:
            run, execution, staged = item.run, item.execution, item.staged
            error = None if staged else final_error(execution.failures)
            ending, if_cancelled = (
                self._ending(
                    settle(cancel_requested=flag, generated=bool(staged), error=error), execution
                )
                for flag in (False, True)
            )
            records.append(
                FinishRecord(
                    run.job_id,
                    run.app_id,
                    run.claim,
                    ending,
                    if_cancelled,
                    execution.provider,
                    execution.attempts,
                )
            )
        statuses: list[RunStatus | None] = []
        async with self._uow() as uow:
            ended = await RunRepository(uow.session).finish_owned(records, self.owner)
            for item, record in zip(batch, records, strict=True):
                state = ended.get(item.run.job_id)
                if state is None:
                    log.warning("run %s is no longer ours; dropping its result", item.run.job_id)
                    statuses.append(None)
                    continue
                cancel_requested, attempts = state
                ending = record.if_cancelled if cancel_requested else record.ending
                uow.publish(
                    self._final_event(item.run, item.execution, item.staged, ending, attempts)
                )
                statuses.append(ending.status)
            await uow.commit()
        return statuses

    @staticmethod
    def _ending(outcome: Outcome, execution: Execution) -> Ending:
        generated = outcome.status is RunStatus.GENERATED
        return Ending(
            outcome.status, outcome.error, execution.cost_usd if generated else Decimal(0)
        )

    @staticmethod
    def _final_event(
        run: ClaimedRun,
        execution: Execution,
        staged: list[StagedOutput],
        outcome: Ending,
        attempts: int,
    ) -> JobGenerated | JobCompleted:
        spec = run.spec
        if outcome.status is RunStatus.GENERATED:
            return JobGenerated.new(
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
                    provider_cost_usd=str(outcome.cost_usd),
                ),
            )
        return job_completed(
            app_id=run.app_id,
            job_id=run.job_id,
            user_id=spec.user_id,
            status=JobStatus(outcome.status.value),
            requested_outputs=spec.input.num_outputs,
            error=outcome.error,
            provider=execution.provider,
            attempts=attempts,
        )

    async def _discard(self, staged: list[StagedOutput]) -> None:
        """Best effort: a cancelled job's staged output is never used."""
        for output in staged:
            with contextlib.suppress(Exception):
                await self._staging.delete(output.key)
