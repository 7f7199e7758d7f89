"""Fixtures for DB-backed tests: the real local PostgreSQL, database genhub_orchestrator_test.

The schema is rebuilt from the migrations once per session; tables are emptied per test.
Tests using these fixtures fail when PostgreSQL is not reachable.
"""

import os
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
from genhub_orchestrator.cli import MIGRATIONS_DIR
from genhub_platform.db import make_session_factory
from genhub_platform.testing import fresh_migrated_database
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "genhub")
PG_PASSWORD = os.environ.get("PGPASSWORD", "genhub")
TEST_DB = "genhub_orchestrator_test"
TEST_URL = f"postgresql+asyncpg://{PG_USER}:{PG_PASSWORD}@{PG_HOST}:{PG_PORT}/{TEST_DB}"


@pytest.fixture(scope="session")
def orch_database() -> Iterator[str]:
    try:
        yield fresh_migrated_database(TEST_URL, MIGRATIONS_DIR)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable (run `make infra-up`): {exc}")


@pytest.fixture(scope="session")
async def orch_engine(orch_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(orch_database, pool_size=10, max_overflow=10)
    yield engine
    await engine.dispose()


@pytest.fixture
async def orch_uow(orch_engine: AsyncEngine) -> Callable[[], UnitOfWork]:
    async with orch_engine.begin() as conn:
        await conn.execute(
            text("TRUNCATE runs, attempts, cancel_requests, outbox, processed_events CASCADE")
        )
    sessions = make_session_factory(orch_engine)
    return lambda: UnitOfWork(sessions, on_commit=lambda: None)
