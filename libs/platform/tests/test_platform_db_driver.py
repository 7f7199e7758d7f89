"""db.driver / fetch / execute: statements straight to asyncpg, inside the session's transaction."""

from collections.abc import AsyncIterator

import asyncpg
import pytest
from genhub_platform import db
from genhub_platform.db import DB_STATEMENTS, SessionFactory, make_engine, make_session_factory
from genhub_platform.settings import PlatformSettings
from sqlalchemy import text


@pytest.fixture
async def sessions(platform_test_database: str) -> AsyncIterator[SessionFactory]:
    settings = PlatformSettings(service_name="platform_test", DB_PRE_PING="local")
    engine = make_engine(settings)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS driver_probe"))
        await conn.execute(text("CREATE TABLE driver_probe (n int PRIMARY KEY, doc jsonb)"))
    yield make_session_factory(engine)
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE driver_probe"))
    await engine.dispose()


async def _count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int((await session.exec(text("SELECT count(*) FROM driver_probe"))).scalar_one())  # type: ignore[call-overload]


async def test_driver_statements_commit_and_roll_back_with_the_session(
    sessions: SessionFactory,
) -> None:
    before = DB_STATEMENTS._value.get()
    # First statement of the transaction through the driver: the transaction is opened for it.
    async with sessions() as session:
        await db.execute(session, "INSERT INTO driver_probe VALUES ($1, $2)", 1, '{"a": [1]}')
        await session.rollback()
    assert await _count(sessions) == 0

    async with sessions() as session:
        await db.execute(session, "INSERT INTO driver_probe VALUES ($1, $2)", 1, '{"a": [1]}')
        # Mixed with SQLAlchemy statements: one transaction.
        await session.exec(text("INSERT INTO driver_probe VALUES (2, NULL)"))  # type: ignore[call-overload]
        rows = await db.fetch(session, "SELECT n, doc FROM driver_probe ORDER BY n")
        assert [(r["n"], r["doc"]) for r in rows] == [(1, {"a": [1]}), (2, None)]
        await session.commit()
    assert await _count(sessions) == 2

    async with sessions() as session:
        await session.exec(text("DELETE FROM driver_probe WHERE n = 2"))  # type: ignore[call-overload]
        await db.execute(session, "DELETE FROM driver_probe WHERE n = $1", 1)
        # leaving without commit rolls both back
    assert await _count(sessions) == 2
    assert DB_STATEMENTS._value.get() - before >= 6  # driver statements are counted too


async def test_a_failed_driver_statement_leaves_the_session_usable_after_rollback(
    sessions: SessionFactory,
) -> None:
    async with sessions() as session:
        await db.execute(session, "INSERT INTO driver_probe VALUES (1, NULL)")
        with pytest.raises(asyncpg.UniqueViolationError):
            await db.execute(session, "INSERT INTO driver_probe VALUES (1, NULL)")
        await session.rollback()
        await db.execute(session, "INSERT INTO driver_probe VALUES (3, NULL)")
        await session.commit()
    async with sessions() as session:
        assert [r["n"] for r in await db.fetch(session, "SELECT n FROM driver_probe")] == [3]


async def test_a_statement_binds_named_parameters_in_order_of_first_use(
    sessions: SessionFactory,
) -> None:
    insert = db.Statement(
        "INSERT INTO driver_probe (n, doc) SELECT n, CAST(:doc AS jsonb)"
        " FROM unnest(CAST(:ns AS int[])) AS n WHERE n > :floor OR n = ANY(CAST(:ns AS int[]))"
    )
    assert insert.names == ("doc", "ns", "floor")
    assert "$2" in insert.sql and ":ns" not in insert.sql
    assert db.Statement("SELECT '1'::int, :a").names == ("a",)  # casts are not parameters
    with pytest.raises(TypeError, match="floor"):
        await insert.execute(sessions(), doc="{}", ns=[1])
    async with sessions() as session:
        await insert.execute(session, ns=[4, 5], doc='{"k": 1}', floor=0)
        select = db.Statement("SELECT n, doc FROM driver_probe WHERE n >= :lowest ORDER BY n")
        rows = await select.fetch(session, lowest=5)
        assert [(r["n"], r["doc"]) for r in rows] == [(5, {"k": 1})]
        await session.commit()
