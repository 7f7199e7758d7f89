"""no planner statistics for the payload columns no query filters or sorts on
(genhub_platform.migrations.statistics_off says why)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 02:40:00
"""

from collections.abc import Sequence

from genhub_platform.migrations import OUTBOX_PAYLOAD_COLUMNS, statistics_off

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> its columns that are only ever stored and returned, never searched.
PAYLOAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "jobs": ("spec", "metadata", "outputs", "error_details", "error_message"),
    "outbox": OUTBOX_PAYLOAD_COLUMNS,
    "idempotency_keys": ("request_hash", "response_body"),
}

upgrade, downgrade = statistics_off(PAYLOAD_COLUMNS)
