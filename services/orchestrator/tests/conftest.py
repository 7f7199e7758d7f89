"""Fixtures for DB-backed tests: the real local PostgreSQL, database genhub_orchestrator_test.

The schema is rebuilt from the migrations once per session; tables are emptied per test.
Tests using these fixtures fail when PostgreSQL is not reachable.
"""

import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import httpx
import pytest
from genhub_orchestrator.cli import MIGRATIONS_DIR
from genhub_platform.db import make_session_factory
from genhub_platform.testing import fresh_migrated_database
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Test helpers next to this file (fake provider servers) import as top-level modules.
sys.path.insert(0, os.path.dirname(__file__))

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
            text(
                "TRUNCATE runs, attempts, cancel_requests, outbox, processed_events, "
                "prompt_cache, budget_squeezes, plan_limits CASCADE"
            )
        )
        # Catalog edits of a test stay with it: extra rows go, seeded providers heal.
        await conn.execute(text("DELETE FROM providers WHERE name LIKE 'test-%'"))
        await conn.execute(text("DELETE FROM models WHERE name LIKE 'test-%'"))
        await conn.execute(text("UPDATE providers SET health = 'healthy', circuit = 'closed'"))
    sessions = make_session_factory(orch_engine)
    return lambda: UnitOfWork(sessions, on_commit=lambda: None)


@pytest.fixture
async def orch_client(
    orch_database: str, orch_uow: Callable[[], UnitOfWork]
) -> AsyncIterator[httpx.AsyncClient]:
    from genhub_orchestrator.config import Settings
    from genhub_orchestrator.main import create_app

    app = create_app(Settings(ORCHESTRATOR_DATABASE_URL=orch_database, LOG_FORMAT="text"))
    transport = httpx.ASGITransport(app=app)  # no lifespan: no Kafka, no background loops
    async with httpx.AsyncClient(transport=transport, base_url="http://orchestrator") as client:
        yield client
    await app.state.runtime.engine.dispose()
