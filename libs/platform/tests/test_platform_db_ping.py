"""db_pre_ping="local": a connection the server closed is replaced at checkout, no round trip."""

import asyncio
import os

import asyncpg
import pytest
from genhub_platform.db import DB_STATEMENTS, make_engine
from genhub_platform.settings import PlatformSettings
from sqlalchemy import text

TEST_DB = "genhub_platform_test"


def _admin_dsn(settings: PlatformSettings) -> str:
    return os.environ.get(
        "PLATFORM_TEST_ADMIN_DSN",
        f"postgresql://{settings.pguser}:{settings.pgpassword.get_secret_value()}"
        f"@{settings.pghost}:{settings.pgport}/postgres",
    )


@pytest.mark.parametrize("mode", ["local", "roundtrip"])
async def test_terminated_backend_is_replaced_at_checkout(mode: str) -> None:
    settings = PlatformSettings(service_name="platform_test", DB_PRE_PING=mode, db_pool_size=1)
    admin = await asyncpg.connect(_admin_dsn(settings))
    if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEST_DB):
        await admin.execute(f'CREATE DATABASE "{TEST_DB}"')
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.2)  # the close reaches the pooled connection's socket
        before = DB_STATEMENTS._value.get()
        async with engine.connect() as conn:
            new_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert new_pid != pid
        if mode == "local":  # no ping statement went out: only the query itself
            assert DB_STATEMENTS._value.get() - before == 1
    finally:
        await engine.dispose()
        await admin.close()
