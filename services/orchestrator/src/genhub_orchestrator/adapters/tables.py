"""The orchestrator's tables: the model catalog, the run queue and the provider attempt log."""

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _created_at() -> Any:
    column = Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    return Field(sa_column=column)


def _nullable_ts() -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class CatalogModel(SQLModel, table=True):
    __tablename__ = "models"

    name: str = Field(primary_key=True, max_length=64)
    display_name: str = Field(max_length=128)
    enabled: bool = True
    capabilities: list[str] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]")
    )
    max_outputs: int = 4
    family: str = Field(default="", max_length=64)
    max_input_images: int = 0
    aspect_ratios: list[str] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]")
    )
    sizes: list[str] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]")
    )
    created_at: datetime = _created_at()


class Provider(SQLModel, table=True):
    """A provider account: which adapter (`kind`), where its key is, its limits and health."""

    __tablename__ = "providers"

    name: str = Field(primary_key=True, max_length=64)
    enabled: bool = True
    kind: str = Field(default="mock", max_length=32)
    display_name: str = Field(default="", max_length=128)
    credentials_env: str | None = Field(default=None, max_length=128)
    settings: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    max_concurrency: int = 0  # per process; 0 = no cap
    timeout_s: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    health: str = Field(default="healthy", max_length=16)
    circuit: str = Field(default="closed", max_length=16)
    health_changed_at: datetime | None = _nullable_ts()
    created_at: datetime = _created_at()


class Route(SQLModel, table=True):
    """model → provider, with the provider's own model id; higher priority is tried first."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("model", "provider", "provider_model_id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    model: str = Field(
        sa_column=Column(String(64), ForeignKey("models.name", ondelete="CASCADE"), nullable=False)
    )
    provider: str = Field(
        sa_column=Column(
            String(64), ForeignKey("providers.name", ondelete="CASCADE"), nullable=False
        )
    )
    provider_model_id: str = Field(max_length=256)
    priority: int = 100
    cost_usd: Decimal = Field(
        default=Decimal(0), sa_column=Column(Numeric(12, 6), nullable=False, server_default="0")
    )
    enabled: bool = True
    settings: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )


class Run(SQLModel, table=True):
    """One job in the orchestrator's queue. The job id is the key: inserts are idempotent."""

    __tablename__ = "runs"
    __table_args__ = (
        # The claim query's path: only live runs, best priority then oldest first.
        Index(
            "ix_runs_claim",
            "priority",
            "created_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    job_id: UUID = Field(primary_key=True)
    app_id: UUID = Field(index=True)
    user_id: str = Field(max_length=128)
    model: str = Field(max_length=64)
    spec: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    hold_id: UUID | None = None
    hold_amount: int = 0
    priority: int = 5
    status: str = Field(max_length=16)
    attempts: int = 0  # provider attempts over all executions
    claims: int = 0  # how often a worker took the run (a crash loop shows here)
    lease_owner: UUID | None = None
    lease_until: datetime | None = _nullable_ts()
    cancel_requested: bool = False
    provider: str | None = Field(default=None, max_length=64)
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()
    started_at: datetime | None = _nullable_ts()
    finished_at: datetime | None = _nullable_ts()
    plan: str = Field(default="free", max_length=16)
    enhanced_prompt: str | None = None
    cache_key: str | None = Field(default=None, max_length=64)
    cache_hit: bool = False
    cost_usd: Decimal = Field(
        default=Decimal(0), sa_column=Column(Numeric(12, 6), nullable=False, server_default="0")
    )


class Attempt(SQLModel, table=True):
    """One call to one provider for one run: the provider attempt log."""

    __tablename__ = "attempts"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    job_id: UUID = Field(foreign_key="runs.job_id", index=True)
    app_id: UUID
    claim: int
    model: str = Field(default="", max_length=64)
    provider: str = Field(max_length=64)
    provider_model_id: str = Field(max_length=256)
    provider_task_id: str | None = Field(default=None, max_length=256)
    cost_usd: Decimal = Field(
        default=Decimal(0), sa_column=Column(Numeric(12, 6), nullable=False, server_default="0")
    )
    latency_ms: int
    outcome: str = Field(max_length=16)  # succeeded | failed
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    created_at: datetime = _created_at()


class CancelRequest(SQLModel, table=True):
    """A cancel that arrived before tokens.reserved (different topics are not ordered)."""

    __tablename__ = "cancel_requests"

    # Keyed by app too: a stray cancel from another tenant never shadows the owner's.
    job_id: UUID = Field(primary_key=True)
    app_id: UUID = Field(primary_key=True)
    reason: str
    created_at: datetime = _created_at()


class PlanLimit(SQLModel, table=True):
    """How many runs one app may have running at once, by the job's plan."""

    __tablename__ = "plan_limits"

    plan: str = Field(primary_key=True, max_length=16)
    max_running: int


class BudgetSqueeze(SQLModel, table=True):
    """An app past its soft budget cap: its jobs route cheapest first until `until`."""

    __tablename__ = "budget_squeezes"

    app_id: UUID = Field(primary_key=True)
    period: str = Field(max_length=32)
    until: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = _created_at()


class CacheEntry(SQLModel, table=True):
    """A finished job's output objects, reusable by jobs of the same app with the same key."""

    __tablename__ = "prompt_cache"

    app_id: UUID = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=64)
    model: str = Field(max_length=64)
    job_id: UUID
    outputs: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]")
    )
    hits: int = 0
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = _created_at()
