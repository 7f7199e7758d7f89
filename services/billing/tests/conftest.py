"""Fixtures for billing's DB tests: a migrated `genhub_billing_test` database and units of work.

Only the test database is touched (never `genhub_billing`). Tests fail when PostgreSQL is
down: `make test` starts it first.
"""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from genhub_billing import services
from genhub_billing.cli import MIGRATIONS_DIR
from genhub_contracts import (
    AppOptions,
    Envelope,
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    OutputFile,
    Plan,
    parse_event,
)
from genhub_contracts.events import JobCompletedPayload, JobRequestedPayload
from genhub_platform.db import SessionFactory, make_session_factory
from genhub_platform.kafka import record_first_deliveries
from genhub_platform.testing import fresh_migrated_database
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

TEST_DB_URL = os.environ.get(
    "BILLING_TEST_DATABASE_URL",
    "postgresql+asyncpg://genhub:genhub@127.0.0.1:5432/genhub_billing_test",
)


@pytest.fixture(scope="session")
def migrated_db() -> str:
    """Rebuild the test schema from the migrations once per session (also tests them)."""
    try:
        return fresh_migrated_database(TEST_DB_URL, MIGRATIONS_DIR)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"test database unavailable (run `make infra-up`): {exc}")


@pytest.fixture(scope="session")
async def engine(migrated_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(migrated_db, pool_size=30, max_overflow=10)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> AsyncIterator[SessionFactory]:
    async with engine.begin() as conn:
        # TRUNCATE skips the transfers' immutability trigger (it guards UPDATE/DELETE only).
        await conn.execute(
            text(
                "TRUNCATE accounts, transfers, holds, rejections, outbox, processed_events,"
                " grant_lots, app_settings, quota_usage, job_costs, app_spend, budget_alerts,"
                " plan_allocations CASCADE"
            )
        )
        await conn.execute(text("DELETE FROM prices WHERE app_id IS NOT NULL OR model <> 'mock'"))
        await conn.execute(
            text(
                "UPDATE prices SET tokens_per_output = 10, hd_multiplier = 1.5 WHERE model = 'mock'"
            )
        )
        await conn.execute(
            text(
                "UPDATE plans SET monthly_tokens = CASE plan WHEN 'basic' THEN 500"
                " WHEN 'pro' THEN 2000 WHEN 'enterprise' THEN 10000 ELSE 0 END"
            )
        )
    yield make_session_factory(engine)


@pytest.fixture
def make_uow(sessions: SessionFactory) -> Callable[[], UnitOfWork]:
    return lambda: UnitOfWork(sessions, on_commit=lambda: None)


@pytest.fixture
def outbox(sessions: SessionFactory) -> Callable[[], Any]:
    """Events committed to the outbox so far, decoded, oldest first."""

    async def read() -> list[Envelope[Any]]:
        async with sessions() as session:
            rows = (await session.exec(text("SELECT payload FROM outbox ORDER BY id"))).all()
        return [parse_event(row[0]) for row in rows]

    return read


@pytest.fixture
def sql(sessions: SessionFactory) -> Callable[..., Any]:
    """Run one SQL statement in its own transaction; returns all rows."""

    async def run(statement: str, **params: Any) -> list[Any]:
        async with sessions() as session, session.begin():
            result = await session.exec(text(statement), params=params)
            return list(result.all()) if result.returns_rows else []

    return run


@pytest.fixture
def app_id() -> Iterator[UUID]:
    yield UUID("11111111-1111-1111-1111-111111111111")


class Saga:
    """Drives billing's use cases the way its consumers and HTTP handlers do (inbox, commit)."""

    def __init__(self, make_uow: Callable[[], UnitOfWork], app_id: UUID) -> None:
        self.make_uow = make_uow
        self.app_id = app_id

    def requested(self, user: str = "u1", outputs: int = 1, **input_kw: Any) -> JobRequested:
        plan = input_kw.pop("plan", Plan.FREE)
        app = input_kw.pop("app", AppOptions())
        spec = JobSpec(
            user_id=user, model=input_kw.pop("model", "mock"), plan=plan, app=app,
            input=GenerationInput(prompt="p", num_outputs=outputs, **input_kw),
        )  # fmt: skip
        return JobRequested.new(
            app_id=self.app_id, job_id=uuid4(), payload=JobRequestedPayload(spec=spec)
        )

    def completed(
        self, req: JobRequested, status: JobStatus, delivered: int, **extra: Any
    ) -> JobCompleted:
        outputs = [
            OutputFile(index=i, key=f"o/{i}.png", content_type="image/png", width=8, height=8,
                       bytes=1, sha256="0" * 64)
            for i in range(delivered)
        ]  # fmt: skip
        payload = JobCompletedPayload(
            user_id=req.payload.spec.user_id, status=status, outputs=outputs,
            requested_outputs=req.payload.spec.input.num_outputs, **extra,
        )  # fmt: skip
        return JobCompleted.new(app_id=req.app_id, job_id=req.job_id, payload=payload)

    async def reserve(self, *events: JobRequested, ttl: int = 1800) -> None:
        """One batch, as the batch consumer applies it (bulk inbox, one transaction)."""
        async with self.make_uow() as uow:
            fresh = await record_first_deliveries(
                uow.session, "billing.reserve", (e.event_id for e in events)
            )
            await services.reserve_batch(
                uow, [e for e in events if e.event_id in fresh], hold_ttl_s=ttl
            )
            await uow.commit()

    async def settle(self, event: JobCompleted) -> None:
        async with self.make_uow() as uow:
            if await uow.first_delivery("billing.settle", event.event_id):
                await services.settle_job(uow, event)
                await uow.commit()

    async def grant(
        self, user: str, amount: int, *, expires_at: Any = None, key: str | None = None
    ) -> services.GrantResult:
        async with self.make_uow() as uow:
            result = await services.grant_tokens(
                uow, app_id=self.app_id, user_id=user, amount=amount, reason="test",
                idempotency_key=key, expires_at=expires_at,
            )  # fmt: skip
            await uow.commit()
        return result

    async def funds(self, user: str = "u1") -> tuple[int, int]:
        async with self.make_uow() as uow:
            f = await services.get_funds(uow, app_id=self.app_id, user_id=user)
        return f.balance, f.reserved

    async def assert_reconciles(self) -> None:
        async with self.make_uow() as uow:
            report = await services.run_reconcile(uow)
        assert report.ok, report.problems


@pytest.fixture
def saga(make_uow: Callable[[], UnitOfWork], app_id: UUID) -> Saga:
    return Saga(make_uow, app_id)
