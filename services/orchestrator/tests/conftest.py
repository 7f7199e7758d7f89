"""Fixtures for DB-backed tests: the real local PostgreSQL, database genhub_orchestrator_test.

The schema is rebuilt from the migrations once per session; tables are emptied per test.
Tests using these fixtures fail when PostgreSQL is not reachable.
"""

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
from genhub_orchestrator.cli import MIGRATIONS_DIR
from genhub_platform.db import make_session_factory
from genhub_platform.migrations import upgrade_to_head
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER = os.environ.get("PGUSER", "genhub")
PG_PASSWORD = os.environ.get("PGPASSWORD", "genhub")
TEST_DB = "genhub_orchestrator_test"
TEST_URL = f"postgresql+asyncpg://{PG_USER}:{PG_PASSWORD}@{PG_HOST}:{PG_PORT}/{TEST_DB}"


def _pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


async def _reset_database() -> None:
    admin = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD, database="postgres"
    )
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEST_DB)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{TEST_DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD, database=TEST_DB
    )
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def orch_database() -> Iterator[str]:
    if not _pg_reachable():
        pytest.fail("PostgreSQL is not reachable (run `make infra-up`)")
    asyncio.run(_reset_database())
    upgrade_to_head(MIGRATIONS_DIR, TEST_URL)
    yield TEST_URL


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
