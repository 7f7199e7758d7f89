"""Async database engine and sessions (SQLModel on asyncpg)."""

from typing import Any

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_platform.settings import PlatformSettings

SessionFactory = async_sessionmaker[AsyncSession]

# Statements sent to PostgreSQL by this process (an executemany counts once): what a benchmark
# divides by its units of work. Code that talks to the driver directly counts its own.
DB_STATEMENTS = Counter("genhub_db_statements_total", "SQL statements sent to the database")


def _count_statement(*_: Any) -> None:
    DB_STATEMENTS.inc()


def _check_open(dbapi_connection: Any, *_: Any) -> None:
    """Pool checkout with db_pre_ping="local": a connection whose socket the driver saw close
    (server restart, terminated backend) is replaced without a round trip."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the database closed this connection")


def make_engine(settings: PlatformSettings) -> AsyncEngine:
    engine = create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=settings.db_pre_ping == "roundtrip",
    )
    event.listen(engine.sync_engine, "before_cursor_execute", _count_statement)
    if settings.db_pre_ping == "local":
        event.listen(engine.sync_engine.pool, "checkout", _check_open)
    return engine


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: handlers read attributes after commit without a reload.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
