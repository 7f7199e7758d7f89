"""app settings (welcome grant, rate limits, job options), end users, rate-limit counters,
admin tokens, audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False, default: bool = True) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.text("now()") if default else None,
        nullable=nullable,
    )


def upgrade() -> None:
    op.add_column(
        "apps", sa.Column("welcome_grant", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "apps",
        sa.Column("rate_limit_per_minute", sa.Integer(), nullable=False, server_default="6000"),
    )
    op.add_column(
        "apps",
        sa.Column("user_rate_limit_per_minute", sa.Integer(), nullable=False, server_default="600"),
    )
    op.add_column(
        "apps",
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default="{}",
        ),
    )
    op.add_column("apps", _ts("updated_at"))

    op.create_table(
        "end_users",
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        _ts("first_seen_at"),
        sa.Column("welcome_tokens", sa.Integer(), nullable=False, server_default="0"),
        _ts("welcome_granted_at", nullable=True, default=False),
        sa.Column("welcome_transfer_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"]),
        sa.PrimaryKeyConstraint("app_id", "user_id"),
    )
    op.create_table(
        "rate_limit_counters",
        sa.Column("bucket", sa.String(length=300), nullable=False),
        _ts("window_start", default=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("max_count", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True, default=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        _ts("at"),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=300), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_app_id", "audit_log", ["app_id", "id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "id"])
    # The log is append only: no row is ever changed or removed.
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append only'; END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_table("audit_log")
    op.drop_table("admin_tokens")
    op.drop_table("rate_limit_counters")
    op.drop_table("end_users")
    for column in (
        "updated_at",
        "options",
        "user_rate_limit_per_minute",
        "rate_limit_per_minute",
        "welcome_grant",
    ):
        op.drop_column("apps", column)
