"""Async database engine and sessions (SQLModel on asyncpg)."""

from typing import Any

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_platform.settings import PlatformSettings

SessionFactory = async_sessionmaker[AsyncSession]

# Statements sent to PostgreSQL by this process (an executemany counts once): what a benchmark
# divides by its units of work. Code that talks to the driver directly counts its own.
DB_STATEMENTS = Counter("genhub_db_statements_total", "SQL statements sent to the database")


def _count_statement(*_: Any) -> None:
    DB_STATEMENTS.inc()


def make_engine(settings: PlatformSettings) -> AsyncEngine:
    engine = create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    return engine


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: handlers read attributes after commit without a reload.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
