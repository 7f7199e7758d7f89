"""idempotency_keys table (request hash, in-flight lease, first response); the minimal
jobs.idempotency_key column and its unique index give way to it

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 17:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.Uuid(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"]),
        sa.PrimaryKeyConstraint("app_id", "key"),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])
    # Keys used before this revision become records of their first job (202 as answered then).
    op.execute(
        """
        INSERT INTO idempotency_keys (app_id, key, request_hash, state, owner, locked_until,
                                      response_status, response_body, job_id, created_at)
        SELECT app_id, idempotency_key, '', 'completed', gen_random_uuid(), created_at, 202,
               jsonb_build_object('job_id', job_id::text, 'status', 'queued'), job_id, created_at
        FROM jobs WHERE idempotency_key IS NOT NULL
        """
    )
    op.drop_index(
        "uq_jobs_app_idempotency_key",
        table_name="jobs",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_column("jobs", "idempotency_key")


def downgrade() -> None:
    op.add_column("jobs", sa.Column("idempotency_key", sa.String(length=255), nullable=True))
    op.create_index(
        "uq_jobs_app_idempotency_key",
        "jobs",
        ["app_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
