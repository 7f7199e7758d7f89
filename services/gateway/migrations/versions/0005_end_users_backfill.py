"""end users known from jobs accepted before the end_users table existed (no welcome grant
for them: they were not new)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 18:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        INSERT INTO end_users (app_id, user_id, first_seen_at, welcome_tokens, welcome_granted_at)
        SELECT app_id, user_id, min(created_at), 0, min(created_at) FROM jobs
        GROUP BY app_id, user_id
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    pass  # the rows are facts about users; nothing to undo
