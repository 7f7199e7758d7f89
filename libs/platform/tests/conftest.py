"""Shared set-up of the platform's DB-backed tests (database `genhub_platform_test`)."""

import os

import asyncpg
import pytest
from genhub_platform.settings import PlatformSettings

TEST_DB = "genhub_platform_test"


@pytest.fixture
async def platform_test_database() -> str:
    """Create the test database if missing (its name is returned); fail, never skip, when
    PostgreSQL is unreachable."""
    settings = PlatformSettings(service_name="platform_test")
    admin_dsn = os.environ.get(
        "PLATFORM_TEST_ADMIN_DSN",
        f"postgresql://{settings.pguser}:{settings.pgpassword.get_secret_value()}"
        f"@{settings.pghost}:{settings.pgport}/postgres",
    )
    try:
        admin = await asyncpg.connect(admin_dsn, timeout=3)
    except OSError as exc:
        pytest.fail(f"PostgreSQL unavailable (run `make infra-up`): {exc}")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEST_DB):
            await admin.execute(f'CREATE DATABASE "{TEST_DB}"')
    finally:
        await admin.close()
    return TEST_DB
