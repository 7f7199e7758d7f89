"""drop ix_jobs_app_created: ix_jobs_app_created_desc_job (0003) serves every query it did

A B-tree is read in either direction, so (app_id, created_at DESC, job_id) answers the app's
jobs by creation time, ranges and order included; the narrower index only cost an insert per
accepted job.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 00:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_jobs_app_created", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_app_created", "jobs", ["app_id", "created_at"], unique=False)
