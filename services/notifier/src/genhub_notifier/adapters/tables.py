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
    # The rotated-out secret keeps signing (second signature) until it expires.
    previous_secret_encrypted: str | None = Field(
        default=None, sa_column=Column(Text, nullable=True)
    )
    previous_expires_at: datetime | None = _ts(nullable=True)


class Endpoint(SQLModel, table=True):
    """An app's webhook endpoint with its own signing secret (Fernet-encrypted)."""

    __tablename__ = "endpoints"

    id: UUID = Field(primary_key=True)
    app_id: UUID = Field(index=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # None: every event type.
    event_types: list[str] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    enabled: bool = Field(default=True)
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    disabled_at: datetime | None = _ts(nullable=True)
    secret_encrypted: str = Field(sa_column=Column(Text, nullable=False))
    previous_secret_encrypted: str | None = Field(
        default=None, sa_column=Column(Text, nullable=True)
    )
    previous_expires_at: datetime | None = _ts(nullable=True)
    # Start of the current run of failed attempts; None after a success.
    failing_since: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts(server_now=True)
    updated_at: datetime = _ts(server_now=True)


class JobSettlement(SQLModel, table=True):
    """What billing's tokens.settled said about a job (it may arrive before job.completed)."""

    __tablename__ = "job_settlements"

    job_id: UUID = Field(primary_key=True)
    app_id: UUID
    outcome: str = Field(sa_column=Column(String(16), nullable=False))
    charged: int
    refunded: int
    created_at: datetime = _ts(server_now=True)


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
    requested_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts(server_now=True)


class Message(SQLModel, table=True):
    """One event for an app; its id is the `webhook-id` of every delivery made from it."""

    __tablename__ = "messages"
    __table_args__ = (
        Index(
            "ix_messages_waiting",
            "next_check_at",
            postgresql_where=text("status = 'waiting'"),
        ),
        Index("ix_messages_app_job", "app_id", "job_id"),
    )

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    app_id: UUID
    job_id: UUID | None = None
    event_type: str = Field(sa_column=Column(String(32), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    # Facts the body needs; job messages get the subscription and settlement snapshot added
    # when they fan out. Outputs come from storage on every attempt (fresh URLs).
    event_data: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    next_check_at: datetime | None = _ts(nullable=True)
    occurred_at: datetime = _ts()
    created_at: datetime = _ts(server_now=True)


class Delivery(SQLModel, table=True):
    """One message to one target (an endpoint, or a job's own URL); retried under the
    message's id."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_deliveries_app_created", "app_id", "created_at", "id"),
        Index("ix_deliveries_message", "message_id"),
    )

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    message_id: str = Field(sa_column=Column(String(64), ForeignKey("messages.id"), nullable=False))
    app_id: UUID
    job_id: UUID | None = None
    endpoint_id: UUID | None = None
    # Endpoint id or "url:<override>": the unit of the per-endpoint in-flight bound.
    target_key: str = Field(sa_column=Column(Text, nullable=False))
    event_type: str = Field(sa_column=Column(String(32), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    target_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    attempt_count: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    # Attempts made before the last replay: the schedule restarts after a replay.
    schedule_offset: int = Field(
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
