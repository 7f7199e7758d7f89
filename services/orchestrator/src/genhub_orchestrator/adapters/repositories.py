"""Database access for the catalog and the run queue. Every status change is guarded in SQL
by the domain's allowed source statuses, so concurrent workers and handlers cannot end a run
twice."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from genhub_contracts import ErrorInfo
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_orchestrator.adapters.tables import (
    Attempt,
    CancelRequest,
    CatalogModel,
    Provider,
    Route,
    Run,
)
from genhub_orchestrator.domain.routing import RouteOption
from genhub_orchestrator.domain.runs import RunStatus, sources_of


@dataclass(frozen=True)
class AttemptRecord:
    provider: str
    provider_model_id: str
    latency_ms: int
    outcome: str
    error: ErrorInfo | None = None


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

    async def claim(self, *, limit: int, owner: UUID, lease: timedelta) -> list[Run]:
        """Take up to `limit` queued runs, or running runs whose lease expired (their worker
        died), best priority then oldest first. SKIP LOCKED: concurrent claimers never get the
        same run and never wait for each other."""
        claimable = or_(
            col(Run.status) == RunStatus.QUEUED,
            and_(col(Run.status) == RunStatus.RUNNING, col(Run.lease_until) < func.now()),
        )
        picked = (
            select(col(Run.job_id))
            .where(claimable)
            .order_by(col(Run.priority), col(Run.created_at), col(Run.job_id))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
        )
        stmt = (
            update(Run)
            .where(col(Run.job_id) == picked.c.job_id)
            .values(
                status=RunStatus.RUNNING,
                lease_owner=owner,
                lease_until=func.now() + lease,
                claims=col(Run.claims) + 1,
                started_at=func.coalesce(col(Run.started_at), func.now()),
                updated_at=func.now(),
            )
            .returning(Run)
        )
        runs: list[Run] = list((await self._exec(stmt)).scalars().all())
        runs.sort(key=lambda r: (r.priority, r.created_at))
        return runs

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

    async def finish(
        self,
        job_id: UUID,
        status: RunStatus,
        *,
        error: ErrorInfo | None = None,
        provider: str | None = None,
        add_attempts: int = 0,
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
                    provider=record.provider,
                    provider_model_id=record.provider_model_id,
                    latency_ms=record.latency_ms,
                    outcome=record.outcome,
                    error_code=record.error.code.value if record.error else None,
                    error_message=record.error.message if record.error else None,
                )
            )
        await self._session.flush()
