"""Billing's tables. Invariants live in PostgreSQL as CHECK constraints, not only in Python.

The first migration mirrors these definitions; keep them in step.
"""

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    func,
    text,
)
from sqlalchemy import Uuid as SaUuid
from sqlmodel import Field, SQLModel


def _created_at() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Account(SQLModel, table=True):
    """Per app one issuance account; per (app, end user) one user account."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("kind IN ('issuance', 'user')", name="ck_accounts_kind"),
        CheckConstraint("reserved >= 0", name="ck_accounts_reserved_non_negative"),
        # The never-negative rule: a user can never spend or reserve what they do not have.
        CheckConstraint("kind = 'issuance' OR balance >= reserved", name="ck_accounts_covered"),
        CheckConstraint("kind = 'user' OR reserved = 0", name="ck_accounts_issuance_no_holds"),
        CheckConstraint("(kind = 'user') = (user_id IS NOT NULL)", name="ck_accounts_user_id"),
        Index(
            "ux_accounts_user",
            "app_id",
            "user_id",
            unique=True,
            postgresql_where=text("kind = 'user'"),
        ),
        Index(
            "ux_accounts_issuance",
            "app_id",
            unique=True,
            postgresql_where=text("kind = 'issuance'"),
        ),
    )

    id: UUID = Field(primary_key=True)
    app_id: UUID = Field(nullable=False)
    user_id: str | None = Field(default=None, max_length=128)
    kind: str = Field(max_length=16)
    plan: str | None = Field(default=None, max_length=16)  # the end user's tier, last seen
    disabled: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    balance: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    reserved: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    created_at: datetime | None = Field(default=None, sa_column=_created_at())
    updated_at: datetime | None = Field(default=None, sa_column=_created_at())


class Transfer(SQLModel, table=True):
    """An immutable ledger entry (a trigger in the migration rejects UPDATE and DELETE).

    `balance_after`/`reserved_after` snapshot the user account the transfer touches, taken
    under that account's row lock, so they form a running balance in `seq` order.
    """

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('grant', 'bonus', 'plan_allocation', 'adjustment', 'expiry', "
            "'generation_hold', 'generation_post', 'generation_void')",
            name="ck_transfers_kind",
        ),
        CheckConstraint("amount >= 0", name="ck_transfers_amount_non_negative"),
        # Only a post may be zero (a succeeded job that delivered nothing chargeable).
        CheckConstraint("amount > 0 OR kind = 'generation_post'", name="ck_transfers_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="ck_transfers_two_accounts"),
        CheckConstraint(
            "(kind LIKE 'generation_%') = (job_id IS NOT NULL)", name="ck_transfers_job"
        ),
        Index(
            "ux_transfers_job_kind",
            "job_id",
            "kind",
            unique=True,
            postgresql_where=text("job_id IS NOT NULL"),
        ),
        Index("ix_transfers_debit_seq", "debit_account_id", "seq"),
        Index("ix_transfers_credit_seq", "credit_account_id", "seq"),
    )

    id: UUID = Field(primary_key=True)
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True),
    )
    app_id: UUID = Field(nullable=False)
    kind: str = Field(max_length=32)
    debit_account_id: UUID = Field(
        sa_column=Column(SaUuid, ForeignKey("accounts.id"), nullable=False)
    )
    credit_account_id: UUID = Field(
        sa_column=Column(SaUuid, ForeignKey("accounts.id"), nullable=False)
    )
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    job_id: UUID | None = Field(default=None)
    reason: str | None = Field(default=None, max_length=256)
    idempotency_key: str | None = Field(default=None, max_length=128)
    balance_after: int = Field(sa_column=Column(BigInteger, nullable=False))
    reserved_after: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime | None = Field(default=None, sa_column=_created_at())


class Hold(SQLModel, table=True):
    """A reservation for one job (job_id is unique: a replayed request cannot hold twice)."""

    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'posted', 'voided')", name="ck_holds_status"),
        CheckConstraint("amount >= 0 AND free_outputs >= 0", name="ck_holds_amount"),
        CheckConstraint("amount > 0 OR free_outputs > 0", name="ck_holds_something"),
        CheckConstraint(
            "(status = 'posted') = (posted_amount IS NOT NULL)", name="ck_holds_posted_amount"
        ),
        CheckConstraint("posted_amount BETWEEN 0 AND amount", name="ck_holds_posted_range"),
        CheckConstraint("(status = 'pending') = (settled_at IS NULL)", name="ck_holds_settled"),
        Index("ix_holds_expiry", "expires_at", postgresql_where=text("status = 'pending'")),
        Index("ix_holds_account", "account_id"),
    )

    id: UUID = Field(primary_key=True)
    job_id: UUID = Field(nullable=False, unique=True)
    app_id: UUID = Field(nullable=False)
    user_id: str = Field(max_length=128)
    account_id: UUID = Field(sa_column=Column(SaUuid, ForeignKey("accounts.id"), nullable=False))
    model: str = Field(max_length=64)
    num_outputs: int = Field(ge=1)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Outputs paid by the free daily quota (then amount is 0: the hold reserves no tokens).
    free_outputs: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    charge_cache_hits: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    status: str = Field(default="pending", max_length=16)
    posted_amount: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime | None = Field(default=None, sa_column=_created_at())
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    settled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Rejection(SQLModel, table=True):
    """A job billing refused: remembered so a replayed request gets the same answer."""

    __tablename__ = "rejections"

    job_id: UUID = Field(primary_key=True)
    app_id: UUID = Field(nullable=False)
    user_id: str = Field(max_length=128)
    reason: str = Field(max_length=32)
    available: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    required: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime | None = Field(default=None, sa_column=_created_at())


class Price(SQLModel, table=True):
    """A pricing rule: base tokens per output (1024², standard quality) and the hd multiplier
    for a model; `app_id` NULL is the default for every app, a row with an app id overrides it.
    """

    __tablename__ = "prices"
    __table_args__ = (
        CheckConstraint("tokens_per_output > 0", name="ck_prices_positive"),
        Index("ux_prices_default", "model", unique=True, postgresql_where=text("app_id IS NULL")),
        Index(
            "ux_prices_app",
            "app_id",
            "model",
            unique=True,
            postgresql_where=text("app_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    app_id: UUID | None = Field(default=None)
    model: str = Field(sa_column=Column(String(64), nullable=False))
    tokens_per_output: int = Field(sa_column=Column(BigInteger, nullable=False))
    hd_multiplier: Decimal = Field(
        default=Decimal("1.5"), sa_column=Column(Numeric(6, 3), nullable=False)
    )
    created_at: datetime | None = Field(default=None, sa_column=_created_at())
    updated_at: datetime | None = Field(default=None, sa_column=_created_at())


class GrantLot(SQLModel, table=True):
    """What is left of one credit (grant, bonus, plan allocation, positive adjustment).

    For a user account, the lots' `remaining` always sum to its balance: charges, negative
    adjustments and expiries consume lots, soonest-expiring first.
    """

    __tablename__ = "grant_lots"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_grant_lots_amount"),
        CheckConstraint("remaining BETWEEN 0 AND amount", name="ck_grant_lots_remaining"),
        Index("ix_grant_lots_account", "account_id", postgresql_where=text("remaining > 0")),
        Index(
            "ix_grant_lots_expiry",
            "expires_at",
            postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL"),
        ),
    )

    id: UUID = Field(primary_key=True)
    app_id: UUID = Field(nullable=False)
    account_id: UUID = Field(sa_column=Column(SaUuid, ForeignKey("accounts.id"), nullable=False))
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    remaining: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime | None = Field(default=None, sa_column=_created_at())


class AppSettings(SQLModel, table=True):
    """Billing settings of one app; an app without a row uses the column defaults."""

    __tablename__ = "app_settings"

    app_id: UUID = Field(primary_key=True)
    plan: str = Field(default="free", max_length=16)
    # The plan scheduler credits this app's users their plan's monthly tokens unless it is off.
    monthly_allocations: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    free_daily_quota: int = Field(default=0)
    low_balance_threshold: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    monthly_budget_usd: Decimal | None = Field(
        default=None, sa_column=Column(Numeric(14, 4), nullable=True)
    )
    soft_cap_ratio: Decimal = Field(
        default=Decimal("0.8"), sa_column=Column(Numeric(4, 3), nullable=False)
    )
    updated_at: datetime | None = Field(default=None, sa_column=_created_at())


class QuotaUsage(SQLModel, table=True):
    """Free outputs used by one end user on one UTC day."""

    __tablename__ = "quota_usage"

    app_id: UUID = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=128)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    used: int = Field(default=0)


class JobCost(SQLModel, table=True):
    """Provider cost of one job, counted once towards its app's monthly spend."""

    __tablename__ = "job_costs"

    job_id: UUID = Field(primary_key=True)
    app_id: UUID = Field(nullable=False)
    period: str = Field(max_length=7)
    cost_usd: Decimal = Field(sa_column=Column(Numeric(18, 6), nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_created_at())


class AppSpend(SQLModel, table=True):
    __tablename__ = "app_spend"

    app_id: UUID = Field(primary_key=True)
    period: str = Field(primary_key=True, max_length=7)
    spent_usd: Decimal = Field(default=Decimal(0), sa_column=Column(Numeric(18, 6), nullable=False))


class BudgetAlert(SQLModel, table=True):
    """`budget.exceeded` sent for (app, month, level): at most once."""

    __tablename__ = "budget_alerts"

    app_id: UUID = Field(primary_key=True)
    period: str = Field(primary_key=True, max_length=7)
    level: str = Field(primary_key=True, max_length=8)
    created_at: datetime | None = Field(default=None, sa_column=_created_at())


class PlanRow(SQLModel, table=True):
    __tablename__ = "plans"

    plan: str = Field(primary_key=True, max_length=16)
    monthly_tokens: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=_created_at())


class PlanAllocation(SQLModel, table=True):
    """One row per (app, user, month) the scheduler handled: the once-per-period guard."""

    __tablename__ = "plan_allocations"

    app_id: UUID = Field(primary_key=True)
    user_id: str = Field(primary_key=True, max_length=128)
    period: str = Field(primary_key=True, max_length=7)
    plan: str = Field(max_length=16)
    transfer_id: UUID | None = Field(default=None)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_created_at())
