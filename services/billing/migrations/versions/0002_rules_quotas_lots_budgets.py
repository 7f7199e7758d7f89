"""Pricing multipliers, app settings, free quotas, grant lots (expiry), budgets, plans.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "'grant', 'bonus', 'plan_allocation', 'adjustment', 'expiry', "
    "'generation_hold', 'generation_post', 'generation_void'"
)


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    # --- pricing: base tokens per output (the existing column) x quality multiplier ---------
    op.add_column(
        "prices",
        sa.Column("hd_multiplier", sa.Numeric(6, 3), server_default="1.5", nullable=False),
    )
    op.add_column("prices", _created_at("updated_at"))
    op.create_check_constraint("ck_prices_hd_multiplier", "prices", "hd_multiplier >= 1")

    # --- accounts remember the end user's tier (JobSpec.plan) for plan allocations -----------
    op.add_column("accounts", sa.Column("plan", sa.String(16), nullable=True))

    # --- transfers: more kinds; credits may expire ---------------------------------------------
    op.drop_constraint("ck_transfers_kind", "transfers", type_="check")
    op.create_check_constraint("ck_transfers_kind", "transfers", f"kind IN ({KINDS})")
    op.drop_constraint("ck_transfers_job", "transfers", type_="check")
    op.create_check_constraint(
        "ck_transfers_job", "transfers", "(kind LIKE 'generation_%') = (job_id IS NOT NULL)"
    )
    op.add_column("transfers", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))

    # --- holds: free-quota jobs hold no tokens --------------------------------------------------
    op.drop_constraint("ck_holds_amount", "holds", type_="check")
    op.add_column(
        "holds", sa.Column("free_outputs", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "holds",
        sa.Column("charge_cache_hits", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_check_constraint("ck_holds_amount", "holds", "amount >= 0 AND free_outputs >= 0")
    op.create_check_constraint("ck_holds_something", "holds", "amount > 0 OR free_outputs > 0")

    # --- grant lots: what is left of each credit, spent soonest-expiring first ----------------
    op.create_table(
        "grant_lots",
        sa.Column("id", sa.Uuid(), primary_key=True),  # the crediting transfer's id
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.CheckConstraint("amount > 0", name="ck_grant_lots_amount"),
        sa.CheckConstraint("remaining BETWEEN 0 AND amount", name="ck_grant_lots_remaining"),
    )
    op.create_index(
        "ix_grant_lots_account", "grant_lots", ["account_id"],
        postgresql_where=sa.text("remaining > 0"),
    )  # fmt: skip
    op.create_index(
        "ix_grant_lots_expiry", "grant_lots", ["expires_at"],
        postgresql_where=sa.text("remaining > 0 AND expires_at IS NOT NULL"),
    )  # fmt: skip
    # Balances granted before lots existed become one lot that never expires.
    op.execute(
        "INSERT INTO grant_lots (id, app_id, account_id, amount, remaining)"
        " SELECT gen_random_uuid(), app_id, id, balance, balance FROM accounts"
        " WHERE kind = 'user' AND balance > 0"
    )

    # --- per-app settings ------------------------------------------------------------------------
    op.create_table(
        "app_settings",
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("plan", sa.String(16), server_default="free", nullable=False),
        sa.Column("free_daily_quota", sa.Integer(), server_default="0", nullable=False),
        sa.Column("low_balance_threshold", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("monthly_budget_usd", sa.Numeric(14, 4), nullable=True),
        sa.Column("soft_cap_ratio", sa.Numeric(4, 3), server_default="0.8", nullable=False),
        _created_at("updated_at"),
        sa.CheckConstraint("free_daily_quota >= 0", name="ck_app_settings_quota"),
        sa.CheckConstraint("low_balance_threshold >= 0", name="ck_app_settings_threshold"),
        sa.CheckConstraint("monthly_budget_usd >= 0", name="ck_app_settings_budget"),
        sa.CheckConstraint(
            "soft_cap_ratio > 0 AND soft_cap_ratio <= 1", name="ck_app_settings_soft"
        ),
    )
    op.create_table(
        "quota_usage",
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.CheckConstraint("used >= 0", name="ck_quota_usage_used"),
    )

    # --- budgets: provider cost per job (once), per app and month, alerts once per level ------
    op.create_table(
        "job_costs",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("cost_usd", sa.Numeric(18, 6), nullable=False),
        _created_at(),
        sa.CheckConstraint("cost_usd >= 0", name="ck_job_costs_cost"),
    )
    op.create_table(
        "app_spend",
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("spent_usd", sa.Numeric(18, 6), server_default="0", nullable=False),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("level", sa.String(8), primary_key=True),
        _created_at(),
        sa.CheckConstraint("level IN ('soft', 'hard')", name="ck_budget_alerts_level"),
    )

    # --- plans -------------------------------------------------------------------------------------
    plans = op.create_table(
        "plans",
        sa.Column("plan", sa.String(16), primary_key=True),
        sa.Column("monthly_tokens", sa.BigInteger(), nullable=False),
        _created_at("updated_at"),
        sa.CheckConstraint("monthly_tokens >= 0", name="ck_plans_tokens"),
    )
    op.bulk_insert(
        plans,
        [
            {"plan": "free", "monthly_tokens": 0},
            {"plan": "basic", "monthly_tokens": 500},
            {"plan": "pro", "monthly_tokens": 2000},
            {"plan": "enterprise", "monthly_tokens": 10000},
        ],
    )
    op.create_table(
        "plan_allocations",
        sa.Column("app_id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("plan", sa.String(16), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),  # NULL: the plan gives nothing
        sa.Column("amount", sa.BigInteger(), nullable=False),
        _created_at(),
    )


def downgrade() -> None:
    for table in (
        "plan_allocations", "plans", "budget_alerts", "app_spend", "job_costs", "quota_usage",
        "app_settings", "grant_lots",
    ):  # fmt: skip
        op.drop_table(table)
    op.drop_constraint("ck_holds_something", "holds", type_="check")
    op.drop_constraint("ck_holds_amount", "holds", type_="check")
    op.drop_column("holds", "charge_cache_hits")
    op.drop_column("holds", "free_outputs")
    op.create_check_constraint("ck_holds_amount", "holds", "amount > 0")
    op.drop_column("transfers", "expires_at")
    op.drop_constraint("ck_transfers_job", "transfers", type_="check")
    op.create_check_constraint(
        "ck_transfers_job", "transfers", "(kind = 'grant') = (job_id IS NULL)"
    )
    op.drop_constraint("ck_transfers_kind", "transfers", type_="check")
    op.create_check_constraint(
        "ck_transfers_kind", "transfers",
        "kind IN ('grant', 'generation_hold', 'generation_post', 'generation_void')",
    )  # fmt: skip
    op.drop_column("accounts", "plan")
    op.drop_constraint("ck_prices_hd_multiplier", "prices", type_="check")
    op.drop_column("prices", "updated_at")
    op.drop_column("prices", "hd_multiplier")
