"""no planner statistics for the payload columns no query filters or sorts on
(genhub_platform.migrations.statistics_off says why)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 02:50:00
"""

from collections.abc import Sequence

from genhub_platform.migrations import OUTBOX_PAYLOAD_COLUMNS, statistics_off

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> its columns that are only ever stored and returned, never searched.
PAYLOAD_COLUMNS: dict[str, tuple[str, ...]] = {
    "outbox": OUTBOX_PAYLOAD_COLUMNS,
}

upgrade, downgrade = statistics_off(PAYLOAD_COLUMNS)
