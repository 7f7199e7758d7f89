"""The migrated schema's planner settings (migration 0008): ANALYZE skips the payload columns
no query searches, and keeps the columns the job list filters and sorts on."""

import importlib.util

import pytest
from fastapi import FastAPI
from genhub_gateway.cli import MIGRATIONS_DIR

from .test_gateway_db import rows

pytestmark = pytest.mark.usefixtures("clean_db")


def payload_columns() -> dict[str, tuple[str, ...]]:
    path = MIGRATIONS_DIR / "versions" / "0008_no_statistics_for_payload_columns.py"
    spec = importlib.util.spec_from_file_location("migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.PAYLOAD_COLUMNS)


async def statistics_targets(app: FastAPI) -> dict[tuple[str, str], int | None]:
    """(table, column) -> its statistics target (None or -1: the server's default)."""
    found = await rows(
        app,
        "SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute a"
        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped"
        " AND c.relname IN ('jobs', 'outbox', 'idempotency_keys')",
    )
    return {(table, column): target for table, column, target in found}


async def test_payload_columns_get_no_statistics(app: FastAPI) -> None:
    targets = await statistics_targets(app)
    columns = payload_columns()
    assert set(columns) == {"jobs", "outbox", "idempotency_keys"}
    for table, names in columns.items():
        for column in names:
            assert targets[(table, column)] == 0, (table, column)


async def test_searched_columns_keep_the_default(app: FastAPI) -> None:
    targets = await statistics_targets(app)
    for searched in (
        ("jobs", "app_id"), ("jobs", "user_id"), ("jobs", "status"), ("jobs", "model"),
        ("jobs", "created_at"), ("outbox", "published_at"), ("idempotency_keys", "created_at"),
    ):  # fmt: skip
        assert targets[searched] in (None, -1), searched
