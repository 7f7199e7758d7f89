"""Async database engine and sessions (SQLModel on asyncpg), and the driver under a session."""

import re
from typing import Any

import asyncpg
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


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under `session`, inside the session's transaction.

    For hot statements: sent straight to asyncpg a statement costs ~0.03 ms of CPU against
    ~0.17 ms through SQLAlchemy (parameter processing, result wrapping, the greenlet hop).
    They run in the session's transaction, so they commit or roll back with it. SQLAlchemy's
    asyncpg adapter opens the transaction with the first statement it sends; if none was sent
    yet, it is opened here, the adapter's own way, so the session's commit and rollback end it.
    Values are asyncpg's: jsonb parameters are JSON text (and come back decoded).
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    conn: asyncpg.Connection = raw.driver_connection
    if not conn.is_in_transaction():
        adapter: Any = raw.dbapi_connection
        await adapter._start_transaction()
    if not conn.is_in_transaction():
        raise RuntimeError("no transaction open on the session's connection")
    return conn


async def fetch(session: AsyncSession, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one statement (`$1`-style parameters) run through `driver(session)`."""
    conn = await driver(session)
    DB_STATEMENTS.inc()
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


async def execute(session: AsyncSession, sql: str, *args: Any) -> None:
    """One statement without rows (`$1`-style parameters) run through `driver(session)`."""
    conn = await driver(session)
    DB_STATEMENTS.inc()
    await conn.execute(sql, *args)


_NAMED_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Statement:
    """SQL written with `:name` parameters, turned once into asyncpg's `$n` form and run
    through `driver(session)` (see there): `await STATEMENT.fetch(session, name=value)`."""

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.sql = _NAMED_PARAMETER.sub(number, sql)
        self.names = tuple(names)

    def _args(self, params: dict[str, Any]) -> list[Any]:
        if missing := set(self.names) - params.keys():
            raise TypeError(f"missing parameter(s): {', '.join(sorted(missing))}")
        return [params[name] for name in self.names]

    async def fetch(self, session: AsyncSession, **params: Any) -> list[asyncpg.Record]:
        return await fetch(session, self.sql, *self._args(params))

    async def execute(self, session: AsyncSession, **params: Any) -> None:
        await execute(session, self.sql, *self._args(params))
