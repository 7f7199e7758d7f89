"""The migration helpers that need no database."""

from genhub_platform.migrations import OUTBOX_PAYLOAD_COLUMNS, statistics_statements
from genhub_platform.outbox import OutboxMessage


def test_statistics_statements_one_alter_per_table() -> None:
    statements = statistics_statements({"jobs": ("spec", "outputs"), "outbox": ("payload",)}, 0)
    assert statements == [
        "ALTER TABLE jobs ALTER COLUMN spec SET STATISTICS 0, "
        "ALTER COLUMN outputs SET STATISTICS 0",
        "ALTER TABLE outbox ALTER COLUMN payload SET STATISTICS 0",
    ]
    assert statistics_statements({"jobs": ("spec",)}, -1) == [
        "ALTER TABLE jobs ALTER COLUMN spec SET STATISTICS -1"
    ]


def test_outbox_payload_columns_exist_and_are_not_the_relays() -> None:
    columns = set(OutboxMessage.__table__.columns.keys())  # type: ignore[attr-defined]
    assert set(OUTBOX_PAYLOAD_COLUMNS) <= columns
    # The relay selects unpublished rows in id order: those keep their statistics.
    assert not {"id", "published_at"} & set(OUTBOX_PAYLOAD_COLUMNS)
