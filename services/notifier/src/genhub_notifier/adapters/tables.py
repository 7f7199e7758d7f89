"""SQLModel tables of the notifier database."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = False, server_now: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            DateTime(timezone=True),
            nullable=nullable,
            server_default=func.now() if server_now else None,
        ),
    )


class SigningSecret(SQLModel, table=True):
    """One signing secret per app, Fernet-encrypted at rest."""

    __tablename__ = "signing_secrets"

    app_id: UUID = Field(primary_key=True)
    secret_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts(server_now=True)
    rotated_at: datetime | None = _ts(nullable=True)


class JobSubscription(SQLModel, table=True):
    """What job.requested told us about where (and with what metadata) to report a job."""

    __tablename__ = "job_subscriptions"

    job_id: UUID = Field(primary_key=True)
    app_id: UUID = Field(index=True)
    user_id: str = Field(sa_column=Column(String(128), nullable=False))
    model: str = Field(sa_column=Column(String(64), nullable=False))
    webhook_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # `metadata` is reserved on SQLModel classes; the column keeps the contract's name.
    job_metadata: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    created_at: datetime = _ts(server_now=True)


class Delivery(SQLModel, table=True):
    """One webhook message for one (job, event type); retried under the same id."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("job_id", "event_type", name="uq_deliveries_job_event"),
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'waiting_subscription')"),
        ),
        Index("ix_deliveries_app_created", "app_id", "created_at"),
    )

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    app_id: UUID
    job_id: UUID
    event_type: str = Field(sa_column=Column(String(32), nullable=False))
    status: str = Field(sa_column=Column(String(32), nullable=False))
    # Event facts the body needs (user_id, error, occurred_at); the rest comes from the
    # subscription at dispatch time, outputs from storage (fresh URLs per attempt).
    event_data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    target_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempt_count: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    next_attempt_at: datetime | None = _ts(nullable=True)
    claim_token: UUID | None = Field(default=None, nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts(server_now=True)
    updated_at: datetime = _ts(server_now=True)
    delivered_at: datetime | None = _ts(nullable=True)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    delivery_id: str = Field(
        sa_column=Column(String(64), ForeignKey("deliveries.id"), nullable=False, index=True)
    )
    attempt_no: int
    url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    started_at: datetime = _ts()
    status_code: int | None = None
    latency_ms: int | None = None
    response_excerpt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
