"""Endpoints with their own secrets, messages fanned out into deliveries, settlements, rotation.

Existing deliveries become messages (same id, so webhook-ids are kept); those that were still
waiting or had no endpoint stay messages only; the others keep their rows as deliveries of
their message to the job's URL. Status `dead` becomes `failed`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def _ts(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.add_column("signing_secrets", sa.Column("previous_secret_encrypted", sa.Text()))
    op.add_column("signing_secrets", _ts("previous_expires_at"))
    op.add_column("job_subscriptions", _ts("requested_at"))

    op.create_table(
        "endpoints",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("event_types", postgresql.JSONB(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _ts("disabled_at"),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("previous_secret_encrypted", sa.Text(), nullable=True),
        _ts("previous_expires_at"),
        _ts("failing_since"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_index("ix_endpoints_app_id", "endpoints", ["app_id"])

    op.create_table(
        "job_settlements",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("charged", sa.Integer(), nullable=False),
        sa.Column("refunded", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("event_data", postgresql.JSONB(), nullable=False),
        _ts("next_check_at"),
        _ts("occurred_at", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
    )
    op.create_index(
        "ix_messages_waiting",
        "messages",
        ["next_check_at"],
        postgresql_where=sa.text("status = 'waiting'"),
    )
    op.create_index("ix_messages_app_job", "messages", ["app_id", "job_id"])

    # Existing deliveries → messages (same id: webhook-ids are kept).
    op.execute(
        """
        INSERT INTO messages (id, app_id, job_id, event_type, status, event_data,
                              next_check_at, occurred_at, created_at)
        SELECT id, app_id, job_id, event_type,
               CASE status WHEN 'waiting_subscription' THEN 'waiting'
                           WHEN 'no_endpoint' THEN 'no_endpoint' ELSE 'dispatched' END,
               event_data,
               CASE WHEN status = 'waiting_subscription' THEN next_attempt_at END,
               COALESCE((event_data->>'occurred_at')::timestamptz, created_at),
               created_at
        FROM deliveries
        """
    )
    op.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries"
        " WHERE status IN ('waiting_subscription', 'no_endpoint'))"
    )
    op.execute("DELETE FROM deliveries WHERE status IN ('waiting_subscription', 'no_endpoint')")

    op.drop_constraint("uq_deliveries_job_event", "deliveries", type_="unique")
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.drop_index("ix_deliveries_app_created", table_name="deliveries")
    op.add_column("deliveries", sa.Column("message_id", sa.String(length=64), nullable=True))
    op.add_column("deliveries", sa.Column("endpoint_id", sa.Uuid(), nullable=True))
    op.add_column("deliveries", sa.Column("target_key", sa.Text(), nullable=True))
    op.add_column(
        "deliveries",
        sa.Column("schedule_offset", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE deliveries SET message_id = id, target_key = 'url:' || COALESCE(target_url, ''),"
        " status = CASE status WHEN 'dead' THEN 'failed' ELSE status END"
    )
    op.alter_column("deliveries", "message_id", nullable=False)
    op.alter_column("deliveries", "target_key", nullable=False)
    op.alter_column("deliveries", "job_id", nullable=True)
    op.drop_column("deliveries", "event_data")
    op.create_foreign_key("fk_deliveries_message", "deliveries", "messages", ["message_id"], ["id"])
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_deliveries_app_created", "deliveries", ["app_id", "created_at", "id"])
    op.create_index("ix_deliveries_message", "deliveries", ["message_id"])


def downgrade() -> None:
    raise NotImplementedError("0002 moves data between tables; restore from a backup instead")
