"""Alembic helpers: each service keeps its own migration history and calls these.

- `run_migrations(metadata, url)` from a service's `migrations/env.py`;
- `upgrade_to_head(migrations_dir, url)` from the service's `migrate` command;
- `create_platform_tables()` / `drop_platform_tables()` from a service's first revision, so the
  outbox and inbox tables are declared once, here;
- `statistics_off(columns)` for a revision that spares ANALYZE the payload columns no query
  searches.
"""

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Several replicas may start together; one migrates, the others wait on this lock.
_MIGRATION_LOCK_ID = 7_346_112


def upgrade_to_head(migrations_dir: Path, database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "head")


def run_migrations(metadata: MetaData, database_url: str | None = None) -> None:
    url = database_url or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL for migrations")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata))


async def _run_online(url: str, metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_locked, metadata)
    await engine.dispose()


def _run_locked(connection: Connection, metadata: MetaData) -> None:
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    try:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
        connection.commit()


def create_platform_tables() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=128), primary_key=True),
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def drop_platform_tables() -> None:
    op.drop_table("processed_events")
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_table("outbox")


# The outbox's columns that are only stored and published, never searched.
OUTBOX_PAYLOAD_COLUMNS = ("key", "payload", "headers")


def statistics_statements(columns: Mapping[str, Sequence[str]], target: int) -> list[str]:
    """One ALTER TABLE per table setting its columns' statistics target (0: none, -1: the
    server's default_statistics_target)."""
    return [
        f"ALTER TABLE {table} "
        + ", ".join(f"ALTER COLUMN {column} SET STATISTICS {target}" for column in names)
        for table, names in columns.items()
    ]


def statistics_off(
    columns: Mapping[str, Sequence[str]],
) -> tuple[Callable[[], None], Callable[[], None]]:
    """`upgrade, downgrade = statistics_off({table: columns})`: a revision that turns these
    columns' statistics off (and, downgraded, back to the default).

    ANALYZE samples up to 30,000 rows and builds statistics for every column, and on an
    event-heavy table most of that time goes to the JSON and byte payloads (a job's spec, an
    event's body, an outbox row) that no query filters, joins or sorts on, so the planner never
    reads them. Autovacuum analyzes a table each time a tenth of it changed; on a 2-core box
    that burst of PostgreSQL CPU (790 ms for a 40,000-job gateway table, 100 ms without the
    payloads' statistics) showed up in the accept path's p99."""

    def set_target(target: int) -> None:
        for statement in statistics_statements(columns, target):
            op.execute(statement)

    def upgrade() -> None:
        set_target(0)

    def downgrade() -> None:
        set_target(-1)

    return upgrade, downgrade
