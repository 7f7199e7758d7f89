"""Initial schema: platform tables, model catalog (seeded with `mock`), run queue, attempt log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from genhub_platform.migrations import create_platform_tables, drop_platform_tables
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    create_platform_tables()

    models = op.create_table(
        "models",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("capabilities", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("max_outputs", sa.Integer(), nullable=False),
        _created_at(),
    )
    providers = op.create_table(
        "providers",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _created_at(),
    )
    routes = op.create_table(
        "routes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "model",
            sa.String(length=64),
            sa.ForeignKey("models.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "provider",
            sa.String(length=64),
            sa.ForeignKey("providers.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider_model_id", sa.String(length=256), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(12, 6), server_default="0", nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.UniqueConstraint("model", "provider", "provider_model_id"),
    )

    op.create_table(
        "runs",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("spec", postgresql.JSONB(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=True),
        sa.Column("hold_amount", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.Uuid(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(), nullable=True),
        _created_at(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_runs_app_id", "runs", ["app_id"])
    op.create_index(
        "ix_runs_claim",
        "runs",
        ["priority", "created_at"],
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )

    op.create_table(
        "attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("runs.job_id"), nullable=False),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("claim", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("provider_model_id", sa.String(length=256), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(), nullable=True),
        _created_at(),
    )
    op.create_index("ix_attempts_job_id", "attempts", ["job_id"])

    op.create_table(
        "cancel_requests",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("reason", sa.String(), nullable=False),
        _created_at(),
    )

    # Seed: the built-in mock model, served by the built-in mock provider.
    op.bulk_insert(
        models,
        [
            {
                "name": "mock",
                "display_name": "Mock (deterministic test images)",
                "enabled": True,
                "capabilities": ["text-to-image"],
                "max_outputs": 4,
            }
        ],
    )
    op.bulk_insert(providers, [{"name": "mock", "enabled": True}])
    op.bulk_insert(
        routes,
        [
            {
                "model": "mock",
                "provider": "mock",
                "provider_model_id": "mock-v1",
                "priority": 100,
                "cost_usd": 0,
                "enabled": True,
                "settings": {},
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("cancel_requests")
    op.drop_index("ix_attempts_job_id", table_name="attempts")
    op.drop_table("attempts")
    op.drop_index("ix_runs_claim", table_name="runs")
    op.drop_index("ix_runs_app_id", table_name="runs")
    op.drop_table("runs")
    op.drop_table("routes")
    op.drop_table("providers")
    op.drop_table("models")
    drop_platform_tables()
