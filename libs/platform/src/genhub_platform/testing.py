"""Helpers for services' DB-backed tests (imported by test code only)."""

import asyncio
from pathlib import Path
from urllib.parse import urlparse

import asyncpg

from genhub_platform.migrations import upgrade_to_head


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _recreate_schema(url: str) -> None:
    plain = _plain(url)
    name = urlparse(plain).path.lstrip("/")
    if not name.endswith("_test"):
        raise RuntimeError(f"refusing to wipe {name!r}: test databases end in _test")
    admin = await asyncpg.connect(plain.rsplit("/", 1)[0] + "/postgres", timeout=3)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(plain, timeout=3)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


def fresh_migrated_database(url: str, migrations_dir: Path) -> str:
    """Create the `*_test` database if needed, empty it and migrate it to head (which also
    tests the migrations). Raises OSError/asyncpg errors when PostgreSQL is unreachable."""
    asyncio.run(_recreate_schema(url))
    upgrade_to_head(migrations_dir, url)
    return url
