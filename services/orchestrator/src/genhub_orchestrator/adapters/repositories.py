"""Database access for the catalog and the run queue. Every status change is guarded in SQL
by the domain's allowed source statuses, so concurrent workers and handlers cannot end a run
twice."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from genhub_contracts import ErrorInfo, JobSpec
from genhub_platform import db
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_orchestrator.adapters.providers import ProviderSpec
from genhub_orchestrator.adapters.tables import (
    Attempt,
    BudgetSqueeze,
    CacheEntry,
    CancelRequest,
    CatalogModel,
    PlanLimit,
    Provider,
    Route,
    Run,
)
from genhub_orchestrator.domain.routing import RouteOption
from genhub_orchestrator.domain.runs import RunStatus, sources_of
from genhub_orchestrator.domain.scheduling import DEFAULT_PLAN_LIMITS, Candidate

CLAIM_LOCK = 0x6F72636800000001  # one claimer at a time across processes: limits stay exact
CLAIM_SCAN_MIN = 256  # queued runs ranked by a claim before it looks at the whole queue...
CLAIM_SCAN_PER_SLOT = 8  # ...or this many per slot to fill

# The hot statements go straight to asyncpg in the session's transaction (platform
# `db.Statement`: ~0.03 ms of CPU each against ~0.17 ms through SQLAlchemy).
_CLAIM_LOCK = db.Statement(f"SELECT pg_advisory_xact_lock({CLAIM_LOCK})")
# Candidates with their app's running count and their plan's limit, in one statement. Queued
# runs are ranked within their app over the first :scan queued runs in queue order (all of
# them when :scan is NULL): a run's rank counts only runs of its app ahead of it in that same
# order, all inside the prefix, so ranks (and hence the first candidates) are the same as over
# the whole queue. The first column is how many queued runs the prefix holds (one row with
# NULL candidate columns when there is no candidate).
_CLAIM_VIEW = db.Statement(
    """
    WITH running AS (
        SELECT app_id, count(*) AS n FROM runs WHERE status = 'running' GROUP BY app_id),
    prefix AS (
        SELECT job_id, app_id, plan, priority, created_at FROM runs
        WHERE status = 'queued' ORDER BY priority, created_at, job_id LIMIT :scan),
    ranked AS (
        SELECT job_id, app_id, plan, priority, created_at,
               row_number() OVER (PARTITION BY app_id ORDER BY priority, created_at, job_id) AS rn
        FROM prefix),
    candidates AS (
        (SELECT job_id, app_id, plan, true AS takeover, priority, created_at
         FROM runs WHERE status = 'running' AND lease_until < now()
         ORDER BY priority, created_at LIMIT :slots)
        UNION ALL
        (SELECT q.job_id, q.app_id, q.plan, false, q.priority, q.created_at
         FROM ranked q
         LEFT JOIN running r ON r.app_id = q.app_id
         LEFT JOIN plan_limits pl ON pl.plan = q.plan
         WHERE q.rn + coalesce(r.n, 0)
               <= coalesce(pl.max_running, (CAST(:defaults AS jsonb) ->> q.plan)::int, 1)
         ORDER BY q.priority, q.created_at, q.job_id LIMIT :slots))
    SELECT s.n, c.job_id, c.app_id, c.plan, c.takeover, coalesce(r.n, 0),
           coalesce(pl.max_running, (CAST(:defaults AS jsonb) ->> c.plan)::int, 1)
    FROM (SELECT count(*) AS n FROM prefix) s
    LEFT JOIN candidates c ON true
    LEFT JOIN running r ON r.app_id = c.app_id
    LEFT JOIN plan_limits pl ON pl.plan = c.plan
    ORDER BY c.takeover DESC, c.priority, c.created_at, c.job_id
    """
)
# Start the picked runs; a row another transaction holds, or that is neither queued nor
# lease-expired any more (cancelled, or its owner's heartbeat came in), is left alone. The
# spec is not sent back for the runs whose spec the caller already holds (`known`).
_START = db.Statement(
    """
    UPDATE runs AS r
    SET status = 'running', lease_owner = :owner, lease_until = now() + CAST(:lease AS interval),
        claims = r.claims + 1, started_at = coalesce(r.started_at, now()), updated_at = now()
    FROM (SELECT job_id FROM runs
          WHERE job_id = ANY(CAST(:ids AS uuid[]))
            AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
          FOR UPDATE SKIP LOCKED) AS l
    WHERE r.job_id = l.job_id
    RETURNING r.job_id, r.app_id, r.claims, r.cancel_requested, r.provider, r.attempts,
              r.cache_key,
              EXISTS (SELECT 1 FROM budget_squeezes b
                      WHERE b.app_id = r.app_id AND b.until > now()),
              r.priority, r.created_at,
              CASE WHEN r.job_id = ANY(CAST(:known AS uuid[])) THEN NULL
                   ELSE CAST(r.spec AS text) END
    """
)
# New runs: queued, or cancelled at once when a cancel overtook the reservation.
_INSERT_MANY = db.Statement(
    """
    INSERT INTO runs (job_id, app_id, user_id, model, spec, hold_id, hold_amount, priority,
                      plan, cache_key, status, cancel_requested, error_code, error_message,
                      finished_at, attempts, claims, cache_hit, cost_usd)
    SELECT n.job_id, n.app_id, n.user_id, n.model, CAST(n.spec AS jsonb), n.hold_id,
           n.hold_amount, n.priority, n.plan, n.cache_key, n.status, n.status = 'cancelled',
           n.error_code, n.error_message, CASE WHEN n.status = 'cancelled' THEN now() END,
           0, 0, false, 0
    FROM unnest(CAST(:jobs AS uuid[]), CAST(:apps AS uuid[]), CAST(:users AS text[]),
                CAST(:models AS text[]), CAST(:specs AS text[]), CAST(:holds AS uuid[]),
                CAST(:amounts AS int[]), CAST(:priorities AS int[]), CAST(:plans AS text[]),
                CAST(:keys AS text[]), CAST(:statuses AS text[]), CAST(:codes AS text[]),
                CAST(:messages AS text[]))
         AS n(job_id, app_id, user_id, model, spec, hold_id, hold_amount, priority, plan,
              cache_key, status, error_code, error_message)
    ON CONFLICT (job_id) DO NOTHING
    RETURNING job_id
    """
)
# The finish transaction in one statement: lock the runs this worker still holds (job id
# order), end each with the outcome the worker chose for it — `if_cancelled` when its cancel
# flag is set, its own otherwise — and log the attempts of the runs it ended.
_FINISH_OWNED = db.Statement(
    """
    WITH f AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]),
                             CAST(:codes AS text[]), CAST(:messages AS text[]),
                             CAST(:costs AS numeric[]), CAST(:c_statuses AS text[]),
                             CAST(:c_codes AS text[]), CAST(:c_messages AS text[]),
                             CAST(:c_costs AS numeric[]), CAST(:providers AS text[]),
                             CAST(:adds AS int[]))
            AS f(job_id, status, error_code, error_message, cost_usd, c_status, c_code,
                 c_message, c_cost, provider, add_attempts)),
    owned AS (
        SELECT job_id, cancel_requested FROM runs
        WHERE job_id = ANY(CAST(:ids AS uuid[])) AND status = 'running' AND lease_owner = :owner
        ORDER BY job_id FOR UPDATE),
    ended AS (
        UPDATE runs AS r
        SET status = CASE WHEN o.cancel_requested THEN f.c_status ELSE f.status END,
            error_code = CASE WHEN o.cancel_requested THEN f.c_code ELSE f.error_code END,
            error_message = CASE WHEN o.cancel_requested THEN f.c_message
                                 ELSE f.error_message END,
            cost_usd = CASE WHEN o.cancel_requested THEN f.c_cost ELSE f.cost_usd END,
            provider = coalesce(f.provider, r.provider), attempts = r.attempts + f.add_attempts,
            lease_owner = NULL, lease_until = NULL, finished_at = now(), updated_at = now()
        FROM owned o JOIN f ON f.job_id = o.job_id
        WHERE r.job_id = o.job_id
        RETURNING r.job_id, o.cancel_requested, r.attempts),
    logged AS (
        INSERT INTO attempts (job_id, app_id, claim, model, provider, provider_model_id,
                              provider_task_id, cost_usd, latency_ms, outcome, error_code,
                              error_message)
        SELECT a.* FROM unnest(CAST(:a_jobs AS uuid[]), CAST(:a_apps AS uuid[]),
                               CAST(:a_claims AS int[]), CAST(:a_models AS text[]),
                               CAST(:a_providers AS text[]),
                               CAST(:a_provider_model_ids AS text[]),
                               CAST(:a_task_ids AS text[]), CAST(:a_costs AS numeric[]),
                               CAST(:a_latencies AS int[]), CAST(:a_outcomes AS text[]),
                               CAST(:a_codes AS text[]), CAST(:a_messages AS text[]))
            AS a(job_id, app_id, claim, model, provider, provider_model_id, provider_task_id,
                 cost_usd, latency_ms, outcome, error_code, error_message)
        WHERE a.job_id IN (SELECT job_id FROM ended))
    SELECT job_id, cancel_requested, attempts FROM ended
    """
)

# The heartbeat of every run a worker holds, in one statement (rows locked in job id order,
# like the finish statement's): the runs still this worker's, with their cancel flags.
_EXTEND_LEASES = db.Statement(
    """
    WITH held AS (
        SELECT job_id FROM runs
        WHERE job_id = ANY(CAST(:ids AS uuid[])) AND status = 'running' AND lease_owner = :owner
        ORDER BY job_id FOR UPDATE)
    UPDATE runs AS r
    SET lease_until = now() + CAST(:lease AS interval), updated_at = now()
    FROM held h WHERE r.job_id = h.job_id
    RETURNING r.job_id, r.cancel_requested
    """
)
_LOCK_JOBS = db.Statement(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k"
)
_PENDING_CANCELS = db.Statement(
    "SELECT job_id, app_id FROM cancel_requests WHERE job_id = ANY(CAST(:ids AS uuid[]))"
)
_DEFAULT_LIMITS = json.dumps(DEFAULT_PLAN_LIMITS)


@dataclass(frozen=True)
class AttemptRecord:
    provider: str
    provider_model_id: str
    latency_ms: int
    outcome: str
    error: ErrorInfo | None = None
    model: str = ""
    provider_task_id: str | None = None
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class Ending:
    """A final status for a run, with its error and what it cost."""

    status: RunStatus
    error: ErrorInfo | None
    cost_usd: Decimal


@dataclass(frozen=True)
class FinishRecord:
    """How one run this worker holds ends: `ending`, or `if_cancelled` when its cancel flag is
    set at the time of the final transaction (the worker decides both; SQL picks one)."""

    job_id: UUID
    app_id: UUID
    claim: int
    ending: Ending
    if_cancelled: Ending
    provider: str | None
    attempts: Sequence[AttemptRecord]


@dataclass(frozen=True)
class NewRun:
    """A reserved job to record as a run (`cancelled`: ended at once by an early cancel)."""

    job_id: UUID
    app_id: UUID
    user_id: str
    model: str
    spec_json: str
    hold_id: UUID | None
    hold_amount: int
    priority: int
    plan: str
    cache_key: str | None
    cancelled: ErrorInfo | None = None


@dataclass(frozen=True)
class StartedRun:
    """A run this worker just started: what the claim needs of it, the spec parsed once."""

    job_id: UUID
    app_id: UUID
    claims: int
    cancel_requested: bool
    provider: str | None
    attempts: int
    cache_key: str | None
    squeezed: bool  # the app's budget is squeezed: cheapest routes first
    spec: JobSpec


@dataclass
class ClaimView:
    """The claim statement's answer: candidates in order, running counts, plan limits."""

    candidates: list[Candidate] = field(default_factory=list)
    running: dict[UUID, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderInfo:
    spec: ProviderSpec
    enabled: bool
    max_concurrency: int
    timeout_s: float | None
    health: str


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog as the worker routes with it (reloaded every few seconds)."""

    models: dict[str, CatalogModel] = field(default_factory=dict)
    providers: dict[str, ProviderInfo] = field(default_factory=dict)
    routes: dict[str, list[RouteOption]] = field(default_factory=dict)


def _code(error: ErrorInfo | None) -> str | None:
    return error.code.value if error else None


def _message(error: ErrorInfo | None) -> str | None:
    return error.message if error else None


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _exec(self, stmt: Any) -> Any:
        return await self._session.exec(stmt)

    async def list_models(self) -> Sequence[CatalogModel]:
        stmt = select(CatalogModel).order_by(col(CatalogModel.name))
        return (await self._exec(stmt)).scalars().all()  # type: ignore[no-any-return]

    async def get_model(self, name: str) -> CatalogModel | None:
        return await self._session.get(CatalogModel, name)

    async def list_providers(self) -> Sequence[Provider]:
        stmt = select(Provider).order_by(col(Provider.name))
        return (await self._exec(stmt)).scalars().all()  # type: ignore[no-any-return]

    async def list_routes(self) -> Sequence[Route]:
        stmt = select(Route).order_by(col(Route.model), col(Route.priority))
        return (await self._exec(stmt)).scalars().all()  # type: ignore[no-any-return]

    async def routes_for(self, model: str) -> list[RouteOption]:
        """Every route of an enabled model, with its provider's switch (ordering is domain's)."""
        stmt = (
            select(Route, col(Provider.enabled))
            .join(Provider, col(Provider.name) == col(Route.provider))
            .join(CatalogModel, col(CatalogModel.name) == col(Route.model))
            .where(col(Route.model) == model, col(CatalogModel.enabled).is_(True))
        )
        rows = (await self._exec(stmt)).all()
        return [
            RouteOption(
                provider=route.provider,
                provider_model_id=route.provider_model_id,
                priority=route.priority,
                cost_usd=route.cost_usd,
                settings=dict(route.settings),
                enabled=route.enabled,
                provider_enabled=provider_enabled,
            )
            for route, provider_enabled in rows
        ]

    async def snapshot(self) -> CatalogSnapshot:
        models = {m.name: m for m in await self.list_models()}
        providers = {
            p.name: ProviderInfo(
                spec=ProviderSpec(p.name, p.kind, p.credentials_env, dict(p.settings)),
                enabled=p.enabled,
                max_concurrency=p.max_concurrency,
                timeout_s=p.timeout_s,
                health=p.health,
            )
            for p in await self.list_providers()
        }
        routes: dict[str, list[RouteOption]] = {}
        for r in await self.list_routes():
            model = models.get(r.model)
            provider = providers.get(r.provider)
            if model is None or not model.enabled or provider is None:
                continue
            routes.setdefault(r.model, []).append(
                RouteOption(
                    provider=r.provider,
                    provider_model_id=r.provider_model_id,
                    priority=r.priority,
                    cost_usd=r.cost_usd,
                    settings=dict(r.settings),
                    enabled=r.enabled,
                    provider_enabled=provider.enabled,
                )
            )
        return CatalogSnapshot(models, providers, routes)

    async def get_provider(self, name: str) -> Provider | None:
        return await self._session.get(Provider, name)

    async def get_route(self, route_id: int) -> Route | None:
        return await self._session.get(Route, route_id)

    def add(self, row: CatalogModel | Provider | Route) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()

    async def set_health(self, name: str, health: str, circuit: str) -> str | None:
        """Store a provider's health; returns the previous health when it changed."""
        provider = await self._session.get(Provider, name, with_for_update=True)
        if provider is None or (provider.health == health and provider.circuit == circuit):
            return None
        previous = provider.health
        provider.health, provider.circuit = health, circuit
        provider.health_changed_at = func.now()  # type: ignore[assignment]
        await self._session.flush()
        return previous if previous != health else None

    # --- plan limits -------------------------------------------------------------------------

    async def plan_limits(self) -> dict[str, int]:
        rows = (await self._exec(select(PlanLimit))).scalars().all()
        return {**DEFAULT_PLAN_LIMITS, **{r.plan: r.max_running for r in rows}}

    async def set_plan_limits(self, limits: dict[str, int]) -> None:
        for plan, limit in limits.items():
            await self._exec(
                insert(PlanLimit)
                .values(plan=plan, max_running=limit)
                .on_conflict_do_update(index_elements=["plan"], set_={"max_running": limit})
            )

    # --- budget squeeze ----------------------------------------------------------------------

    async def squeeze(self, app_id: UUID, period: str, until: datetime) -> None:
        await self._exec(
            insert(BudgetSqueeze)
            .values(app_id=app_id, period=period, until=until)
            .on_conflict_do_update(
                index_elements=["app_id"],
                set_={"period": period, "until": func.greatest(col(BudgetSqueeze.until), until)},
            )
        )

    # --- stats -------------------------------------------------------------------------------

    async def stats(self, since: datetime) -> list[dict[str, Any]]:
        stmt = text(
            """
            SELECT provider, model, count(*) AS attempts,
                   count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95,
                   coalesce(sum(cost_usd), 0) AS cost
            FROM attempts WHERE created_at >= :since
            GROUP BY GROUPING SETS ((provider, model), (provider))
            ORDER BY provider, model NULLS FIRST
            """
        )
        rows = (await self._session.exec(stmt, params={"since": since})).mappings().all()  # type: ignore[call-overload]
        return [dict(r) for r in rows]


class CacheRepository:
    """The prompt cache. Every lookup is scoped to the app: tenants never share outputs."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lookup(self, app_id: UUID, key: str) -> CacheEntry | None:
        stmt = select(CacheEntry).where(
            col(CacheEntry.app_id) == app_id,
            col(CacheEntry.key) == key,
            col(CacheEntry.expires_at) > func.now(),
        )
        return (await self._session.exec(stmt)).scalars().first()  # type: ignore[call-overload,no-any-return]

    async def hit(self, app_id: UUID, key: str) -> None:
        await self._session.exec(
            update(CacheEntry)  # type: ignore[call-overload]
            .where(col(CacheEntry.app_id) == app_id, col(CacheEntry.key) == key)
            .values(hits=col(CacheEntry.hits) + 1)
            .execution_options(synchronize_session=False)
        )

    async def store(
        self,
        *,
        app_id: UUID,
        key: str,
        model: str,
        job_id: UUID,
        outputs: list[dict[str, Any]],
        expires_at: datetime,
    ) -> None:
        values = {"model": model, "job_id": job_id, "outputs": outputs, "expires_at": expires_at}
        await self._session.exec(
            insert(CacheEntry)  # type: ignore[call-overload]
            .values(app_id=app_id, key=key, **values)
            .on_conflict_do_update(index_elements=["app_id", "key"], set_=values)
        )


class RunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _exec(self, stmt: Any) -> Any:
        # Updates never touch objects already loaded in the session (no surprise expiry and
        # lazy load under asyncio): callers keep reading the values they loaded.
        return await self._session.exec(stmt.execution_options(synchronize_session=False))

    async def lock_job(self, job_id: UUID) -> None:
        """Serialise the handlers of one job (enqueue vs. an early cancel) until commit."""
        await self._exec(select(func.pg_advisory_xact_lock(func.hashtextextended(str(job_id), 0))))

    async def lock_jobs(self, job_ids: Sequence[UUID]) -> None:
        """`lock_job` for many jobs in one statement (sorted: two batches never deadlock)."""
        keys = sorted(str(j) for j in job_ids)
        if keys:
            await _LOCK_JOBS.execute(self._session, keys=keys)

    async def pending_cancels(self, pairs: Sequence[tuple[UUID, UUID]]) -> set[tuple[UUID, UUID]]:
        if not pairs:
            return set()
        rows = await _PENDING_CANCELS.fetch(self._session, ids=[job for job, _ in pairs])
        return {(r[0], r[1]) for r in rows} & set(pairs)

    async def insert_many(self, runs: Sequence[NewRun]) -> set[UUID]:
        """Insert the runs whose job has none yet (a job keeps its first run); the job ids
        inserted. One INSERT … SELECT over array parameters, whatever the batch size: asyncpg
        encodes the arrays, no per-row parameter processing, the spec stored from its JSON."""
        if not runs:
            return set()
        rows = await _INSERT_MANY.fetch(
            self._session,
            **{
                "jobs": [r.job_id for r in runs],
                "apps": [r.app_id for r in runs],
                "users": [r.user_id for r in runs],
                "models": [r.model for r in runs],
                "specs": [r.spec_json for r in runs],
                "holds": [r.hold_id for r in runs],
                "amounts": [r.hold_amount for r in runs],
                "priorities": [r.priority for r in runs],
                "plans": [r.plan for r in runs],
                "keys": [r.cache_key for r in runs],
                "statuses": [
                    (RunStatus.QUEUED if r.cancelled is None else RunStatus.CANCELLED).value
                    for r in runs
                ],
                "codes": [r.cancelled.code.value if r.cancelled else None for r in runs],
                "messages": [r.cancelled.message if r.cancelled else None for r in runs],
            },
        )
        return {r[0] for r in rows}

    async def insert(self, run: Run) -> bool:
        """Insert unless the job already has a run; True when this call inserted it."""
        values = run.model_dump(exclude={"created_at", "updated_at"})
        stmt = (
            insert(Run)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["job_id"])
            .returning(col(Run.job_id))
        )
        return (await self._exec(stmt)).first() is not None

    async def get(self, job_id: UUID, app_id: UUID, *, for_update: bool = False) -> Run | None:
        stmt = select(Run).where(col(Run.job_id) == job_id, col(Run.app_id) == app_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self._exec(stmt)).scalars().first()  # type: ignore[no-any-return]

    async def attempts_of(self, job_id: UUID) -> Sequence[Attempt]:
        stmt = select(Attempt).where(col(Attempt.job_id) == job_id).order_by(col(Attempt.id))
        return (await self._exec(stmt)).scalars().all()  # type: ignore[no-any-return]

    # --- cancellation --------------------------------------------------------------------

    async def pending_cancel(self, job_id: UUID, app_id: UUID) -> CancelRequest | None:
        stmt = select(CancelRequest).where(
            col(CancelRequest.job_id) == job_id, col(CancelRequest.app_id) == app_id
        )
        return (await self._exec(stmt)).scalars().first()  # type: ignore[no-any-return]

    async def remember_cancel(self, job_id: UUID, app_id: UUID, reason: str) -> None:
        await self._exec(
            insert(CancelRequest)
            .values(job_id=job_id, app_id=app_id, reason=reason)
            .on_conflict_do_nothing(index_elements=["job_id", "app_id"])
        )

    async def flag_cancel(self, job_id: UUID) -> bool:
        stmt = (
            update(Run)
            .where(col(Run.job_id) == job_id, col(Run.status) == RunStatus.RUNNING)
            .values(cancel_requested=True, updated_at=func.now())
            .returning(col(Run.job_id))
        )
        return (await self._exec(stmt)).first() is not None

    # --- the queue -------------------------------------------------------------------------

    async def claim_view(self, *, slots: int, scan: int | None = None) -> ClaimView:
        """Runs that may start now, best priority then oldest first, after taking the claim
        lock (held until commit), with what `scheduling.pick` needs to choose among them: the
        running count of each candidate's app and the limit of each candidate's plan (the
        `plan_limits` rows over `DEFAULT_PLAN_LIMITS`), all read by one statement.

        Lease-expired running runs (a dead worker's) come first. Queued runs are ranked within
        their app and cut at the app's plan limit minus what it has running, so an app at its
        limit never hides other apps' runs (no head-of-line blocking).

        Ranking the whole queue cost PostgreSQL ~12 ms per claim with 3,000 runs queued (a
        sort and a window over all of them, under the claim lock): the statement first ranks
        only the first `scan` queued runs (default `CLAIM_SCAN_PER_SLOT` per slot, at least
        `CLAIM_SCAN_MIN`). That prefix gives the same first candidates as the whole queue
        whenever it holds `slots` of them, or is the whole queue; otherwise (apps at their
        limit fill the head of the queue) the whole queue is ranked, as before.
        """
        await _CLAIM_LOCK.execute(self._session)
        scan = scan or max(CLAIM_SCAN_MIN, CLAIM_SCAN_PER_SLOT * slots)
        rows = await _CLAIM_VIEW.fetch(
            self._session, slots=slots, scan=scan, defaults=_DEFAULT_LIMITS
        )
        queued = sum(1 for r in rows if r[1] is not None and not r[4])
        if rows[0][0] >= scan and queued < slots:
            rows = await _CLAIM_VIEW.fetch(
                self._session, slots=slots, scan=None, defaults=_DEFAULT_LIMITS
            )
        view = ClaimView()
        for _, job_id, app_id, plan, takeover, running, limit in rows:
            if job_id is None:
                continue  # no candidate: the row only carries the prefix's size
            view.candidates.append(Candidate(job_id, app_id, plan, bool(takeover)))
            view.running[app_id] = int(running)
            view.limits[plan] = int(limit)
        return view

    async def start(
        self,
        job_ids: Sequence[UUID],
        *,
        owner: UUID,
        lease: timedelta,
        known: Mapping[UUID, JobSpec] | None = None,
    ) -> list[StartedRun]:
        """Mark the picked runs running under this worker's lease (skipping any locked row, and
        any that is no longer queued or lease-expired), in priority then age order.

        One UPDATE over an array parameter returning plain rows: the spec as JSON text, parsed
        once here, and whether the app's budget is squeezed. A run whose spec is in `known`
        (this process enqueued it: the event's spec, which is what the row stores) is not sent
        back nor parsed again."""
        if not job_ids:
            return []
        known = known or {}
        rows = await _START.fetch(
            self._session,
            ids=list(job_ids),
            owner=owner,
            lease=lease,
            known=[j for j in job_ids if j in known],
        )
        rows.sort(key=lambda r: (r[8], r[9]))  # priority, created_at
        return [
            StartedRun(
                job_id=r[0],
                app_id=r[1],
                claims=r[2],
                cancel_requested=bool(r[3]),
                provider=r[4],
                attempts=r[5],
                cache_key=r[6],
                squeezed=bool(r[7]),
                spec=known[r[0]] if r[10] is None else JobSpec.model_validate_json(r[10]),
            )
            for r in rows
        ]

    async def extend_lease(self, job_id: UUID, owner: UUID, lease: timedelta) -> bool | None:
        """Heartbeat. Returns the run's cancel flag, or None when this worker lost the run."""
        stmt = (
            update(Run)
            .where(
                col(Run.job_id) == job_id,
                col(Run.status) == RunStatus.RUNNING,
                col(Run.lease_owner) == owner,
            )
            .values(lease_until=func.now() + lease, updated_at=func.now())
            .returning(col(Run.cancel_requested))
        )
        row = (await self._exec(stmt)).first()
        return None if row is None else bool(row[0])

    async def extend_leases(
        self, job_ids: Sequence[UUID], owner: UUID, lease: timedelta
    ) -> dict[UUID, bool]:
        """`extend_lease` for every run in `job_ids` in one statement: job id → cancel flag of
        each run still this worker's (a run missing there was lost)."""
        if not job_ids:
            return {}
        rows = await _EXTEND_LEASES.fetch(
            self._session, ids=list(job_ids), owner=owner, lease=lease
        )
        return {r[0]: bool(r[1]) for r in rows}

    async def lock_owned(self, job_id: UUID, owner: UUID) -> Run | None:
        """The running run this worker holds, row-locked for the final transaction."""
        stmt = (
            select(Run)
            .where(
                col(Run.job_id) == job_id,
                col(Run.status) == RunStatus.RUNNING,
                col(Run.lease_owner) == owner,
            )
            .with_for_update()
        )
        return (await self._exec(stmt)).scalars().first()  # type: ignore[no-any-return]

    async def finish_owned(
        self, records: Sequence[FinishRecord], owner: UUID
    ) -> dict[UUID, tuple[bool, int]]:
        """End the runs this worker still holds, with their attempt log, in one statement over
        array parameters (rows locked in job id order). Returns job id → (cancel flag, attempts
        so far) for each run it ended; a run missing there is not this worker's any more."""
        if not records:
            return {}
        attempts = [(r, a) for r in records for a in r.attempts]
        rows = await _FINISH_OWNED.fetch(
            self._session,
            **{
                "owner": owner,
                "ids": [r.job_id for r in records],
                "statuses": [r.ending.status.value for r in records],
                "codes": [_code(r.ending.error) for r in records],
                "messages": [_message(r.ending.error) for r in records],
                "costs": [r.ending.cost_usd for r in records],
                "c_statuses": [r.if_cancelled.status.value for r in records],
                "c_codes": [_code(r.if_cancelled.error) for r in records],
                "c_messages": [_message(r.if_cancelled.error) for r in records],
                "c_costs": [r.if_cancelled.cost_usd for r in records],
                "providers": [r.provider for r in records],
                "adds": [len(r.attempts) for r in records],
                "a_jobs": [r.job_id for r, _ in attempts],
                "a_apps": [r.app_id for r, _ in attempts],
                "a_claims": [r.claim for r, _ in attempts],
                "a_models": [a.model for _, a in attempts],
                "a_providers": [a.provider for _, a in attempts],
                "a_provider_model_ids": [a.provider_model_id for _, a in attempts],
                "a_task_ids": [a.provider_task_id for _, a in attempts],
                "a_costs": [a.cost_usd for _, a in attempts],
                "a_latencies": [a.latency_ms for _, a in attempts],
                "a_outcomes": [a.outcome for _, a in attempts],
                "a_codes": [_code(a.error) for _, a in attempts],
                "a_messages": [_message(a.error) for _, a in attempts],
            },
        )
        return {job: (bool(flag), int(n)) for job, flag, n in rows}

    async def finish(
        self,
        job_id: UUID,
        status: RunStatus,
        *,
        error: ErrorInfo | None = None,
        provider: str | None = None,
        add_attempts: int = 0,
        cost_usd: Decimal | None = None,
        cache_hit: bool = False,
    ) -> bool:
        """Move the run to a final status if its current status allows it (SQL-guarded)."""
        stmt = (
            update(Run)
            .where(
                col(Run.job_id) == job_id,
                col(Run.status).in_([s.value for s in sources_of(status)]),
            )
            .values(
                status=status,
                error_code=error.code.value if error else None,
                error_message=error.message if error else None,
                provider=func.coalesce(provider, col(Run.provider)),
                attempts=col(Run.attempts) + add_attempts,
                cost_usd=cost_usd if cost_usd is not None else col(Run.cost_usd),
                cache_hit=cache_hit,
                lease_owner=None,
                lease_until=None,
                finished_at=func.now(),
                updated_at=func.now(),
            )
            .returning(col(Run.job_id))
        )
        return (await self._exec(stmt)).first() is not None

    async def release(self, owner: UUID) -> int:
        """Hand this worker's running runs back to the queue (graceful shutdown).

        The claim is not counted: a deploy must not push a job towards `max_claims`.
        """
        stmt = (
            update(Run)
            .where(col(Run.status) == RunStatus.RUNNING, col(Run.lease_owner) == owner)
            .values(
                status=RunStatus.QUEUED,
                lease_owner=None,
                lease_until=None,
                claims=func.greatest(col(Run.claims) - 1, 0),
                updated_at=func.now(),
            )
            .returning(col(Run.job_id))
        )
        return len((await self._exec(stmt)).all())

    async def add_attempts(
        self, job_id: UUID, app_id: UUID, claim: int, records: Sequence[AttemptRecord]
    ) -> None:
        for record in records:
            self._session.add(
                Attempt(
                    job_id=job_id,
                    app_id=app_id,
                    claim=claim,
                    model=record.model,
                    provider=record.provider,
                    provider_model_id=record.provider_model_id,
                    provider_task_id=record.provider_task_id,
                    cost_usd=record.cost_usd,
                    latency_ms=record.latency_ms,
                    outcome=record.outcome,
                    error_code=record.error.code.value if record.error else None,
                    error_message=record.error.message if record.error else None,
                )
            )
        await self._session.flush()

    async def set_enhanced_prompt(self, job_id: UUID, prompt: str) -> None:
        await self._exec(
            update(Run).where(col(Run.job_id) == job_id).values(enhanced_prompt=prompt)
        )

    async def cache_key_of(self, job_id: UUID, app_id: UUID) -> tuple[str | None, bool, str]:
        """(cache key, was it a cache hit, model) of a run of this app."""
        stmt = select(col(Run.cache_key), col(Run.cache_hit), col(Run.model)).where(
            col(Run.job_id) == job_id, col(Run.app_id) == app_id
        )
        row = (await self._exec(stmt)).first()
        return (row[0], bool(row[1]), row[2]) if row else (None, False, "")
