"""Initial billing schema: accounts, immutable transfers, holds, rejections, prices.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from genhub_platform.migrations import create_platform_tables, drop_platform_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    create_platform_tables()

    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reserved", sa.BigInteger(), server_default="0", nullable=False),
        _created_at(),
        _created_at("updated_at"),
        sa.CheckConstraint("kind IN ('issuance', 'user')", name="ck_accounts_kind"),
        sa.CheckConstraint("reserved >= 0", name="ck_accounts_reserved_non_negative"),
        sa.CheckConstraint("kind = 'issuance' OR balance >= reserved", name="ck_accounts_covered"),
        sa.CheckConstraint("kind = 'user' OR reserved = 0", name="ck_accounts_issuance_no_holds"),
        sa.CheckConstraint("(kind = 'user') = (user_id IS NOT NULL)", name="ck_accounts_user_id"),
    )
    op.create_index(
        "ux_accounts_user", "accounts", ["app_id", "user_id"], unique=True,
        postgresql_where=sa.text("kind = 'user'"),
    )  # fmt: skip
    op.create_index(
        "ux_accounts_issuance", "accounts", ["app_id"], unique=True,
        postgresql_where=sa.text("kind = 'issuance'"),
    )  # fmt: skip

    op.create_table(
        "transfers",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False, unique=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("debit_account_id", sa.Uuid(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=256), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reserved_after", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.CheckConstraint(
            "kind IN ('grant', 'generation_hold', 'generation_post', 'generation_void')",
            name="ck_transfers_kind",
        ),
        sa.CheckConstraint("amount >= 0", name="ck_transfers_amount_non_negative"),
        sa.CheckConstraint("amount > 0 OR kind = 'generation_post'", name="ck_transfers_positive"),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name="ck_transfers_two_accounts"
        ),
        sa.CheckConstraint("(kind = 'grant') = (job_id IS NULL)", name="ck_transfers_job"),
    )
    op.create_index(
        "ux_transfers_job_kind", "transfers", ["job_id", "kind"], unique=True,
        postgresql_where=sa.text("job_id IS NOT NULL"),
    )  # fmt: skip
    op.create_index("ix_transfers_debit_seq", "transfers", ["debit_account_id", "seq"])
    op.create_index("ix_transfers_credit_seq", "transfers", ["credit_account_id", "seq"])
    # The ledger is append-only: corrections are new transfers, never edits.
    op.execute(
        """
        CREATE FUNCTION transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'transfers are immutable (% refused)', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers "
        "FOR EACH ROW EXECUTE FUNCTION transfers_immutable()"
    )

    op.create_table(
        "holds",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("job_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.Uuid(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("num_outputs", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("posted_amount", sa.BigInteger(), nullable=True),
        _created_at(),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now() + interval '30 minutes'"),
            nullable=False,
        ),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'posted', 'voided')", name="ck_holds_status"),
        sa.CheckConstraint("amount > 0", name="ck_holds_amount"),
        sa.CheckConstraint(
            "(status = 'posted') = (posted_amount IS NOT NULL)", name="ck_holds_posted_amount"
        ),
        sa.CheckConstraint("posted_amount BETWEEN 0 AND amount", name="ck_holds_posted_range"),
        sa.CheckConstraint("(status = 'pending') = (settled_at IS NULL)", name="ck_holds_settled"),
    )
    op.create_index(
        "ix_holds_expiry", "holds", ["expires_at"], postgresql_where=sa.text("status = 'pending'")
    )
    op.create_index("ix_holds_account", "holds", ["account_id"])

    op.create_table(
        "rejections",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=True),
        sa.Column("required", sa.BigInteger(), nullable=True),
        _created_at(),
    )

    prices = op.create_table(
        "prices",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("tokens_per_output", sa.BigInteger(), nullable=False),
        _created_at(),
        sa.CheckConstraint("tokens_per_output > 0", name="ck_prices_positive"),
    )
    op.create_index(
        "ux_prices_default", "prices", ["model"], unique=True,
        postgresql_where=sa.text("app_id IS NULL"),
    )  # fmt: skip
    op.create_index(
        "ux_prices_app", "prices", ["app_id", "model"], unique=True,
        postgresql_where=sa.text("app_id IS NOT NULL"),
    )  # fmt: skip
    op.bulk_insert(prices, [{"app_id": None, "model": "mock", "tokens_per_output": 10}])


def downgrade() -> None:
    op.drop_table("prices")
    op.drop_table("rejections")
    op.drop_table("holds")
    op.execute("DROP TRIGGER transfers_immutable ON transfers")
    op.drop_table("transfers")
    op.execute("DROP FUNCTION transfers_immutable()")
    op.drop_table("accounts")
    drop_platform_tables()
