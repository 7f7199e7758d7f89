"""index for GET /v1/jobs: (app_id, created_at DESC, job_id), the list's keyset order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 17:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_app_created_desc_job",
        "jobs",
        ["app_id", sa.text("created_at DESC"), "job_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_app_created_desc_job", table_name="jobs")
