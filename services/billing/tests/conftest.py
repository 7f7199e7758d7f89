"""Fixtures for billing's DB tests: a migrated `genhub_billing_test` database and units of work.

Only the test database is touched (never `genhub_billing`). Tests fail when PostgreSQL is
down: `make test` starts it first.
"""

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from genhub_billing.cli import MIGRATIONS_DIR
from genhub_contracts import Envelope, parse_event
from genhub_platform.db import SessionFactory, make_session_factory
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
                "TRUNCATE accounts, transfers, holds, rejections, outbox, processed_events CASCADE"
            )
        )
        await conn.execute(text("DELETE FROM prices WHERE app_id IS NOT NULL"))
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
