"""The gateway's own tables: apps (tenants), their hashed API keys, and the job read-model."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Column, DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel, col


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(*, nullable: bool = False, server_default: bool = True) -> Any:
    return Column(
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if server_default else None,
    )


class AppRow(SQLModel, table=True):
    __tablename__ = "apps"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str = Field(max_length=200)
    slug: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    plan: str = Field(max_length=16)
    enabled: bool = True
    webhook_url: str | None = Field(default=None, max_length=2048)
    # Tokens granted (through billing) to each end user the first time the app names them.
    welcome_grant: int = 0
    # Requests per minute: for the whole app, and for each of its end users (X-User-ID).
    rate_limit_per_minute: int = 6000
    user_rate_limit_per_minute: int = 600
    # genhub_contracts.AppOptions as JSON, snapshotted into every job's spec.
    options: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class EndUserRow(SQLModel, table=True):
    """An app's end user, created the first time the app names them; the welcome grant is
    recorded here once billing has applied it."""

    __tablename__ = "end_users"

    app_id: UUID = Field(foreign_key="apps.id", primary_key=True)
    user_id: str = Field(max_length=128, primary_key=True)
    first_seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    # The welcome grant decided at first sight (the app's setting then); pending while
    # welcome_tokens > 0 and welcome_granted_at is null.
    welcome_tokens: int = 0
    welcome_granted_at: datetime | None = Field(
        default=None, sa_column=_ts(nullable=True, server_default=False)
    )
    welcome_transfer_id: str | None = Field(default=None, max_length=64)


class RateLimitCounterRow(SQLModel, table=True):
    """One rate-limit bucket (app, end user, or source address of failed authentication):
    requests counted in the window that began at `window_start`. Shared by every replica."""

    __tablename__ = "rate_limit_counters"

    bucket: str = Field(max_length=300, primary_key=True)
    window_start: datetime = Field(sa_column=_ts(server_default=False))
    window_s: int
    max_count: int
    count: int


class AdminTokenRow(SQLModel, table=True):
    """Admin tokens created through the admin API; only the SHA-256 is stored."""

    __tablename__ = "admin_tokens"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=32)
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    revoked_at: datetime | None = Field(
        default=None, sa_column=_ts(nullable=True, server_default=False)
    )


class AuditRow(SQLModel, table=True):
    """Who did what to which target, with the state before and after (append only)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_app_id", "app_id", "id"),
        Index("ix_audit_log_action", "action", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=32)
    target_id: str = Field(max_length=300)
    app_id: UUID | None = None
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    request_id: str | None = Field(default=None, max_length=128)


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    app_id: UUID = Field(foreign_key="apps.id", index=True)
    prefix: str = Field(max_length=32)
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    revoked_at: datetime | None = Field(
        default=None, sa_column=_ts(nullable=True, server_default=False)
    )


class JobRow(SQLModel, table=True):
    """Projection of the job saga for `GET /v1/jobs/{id}`; never the source of truth."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The list's keyset order, read backwards too (migration 0003).
        Index("ix_jobs_app_created_desc_job", "app_id", text("created_at DESC"), "job_id"),
        Index("ix_jobs_app_user_created", "app_id", "user_id", "created_at"),
    )

    job_id: UUID = Field(default_factory=uuid4, primary_key=True)
    app_id: UUID = Field(foreign_key="apps.id")
    user_id: str = Field(max_length=128)
    model: str = Field(max_length=64)
    status: str = Field(max_length=16)
    priority: int = 5
    spec: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    # `metadata` is reserved on SQLModel classes, hence the attribute name.
    job_metadata: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    tokens_reserved: int | None = None
    tokens_charged: int | None = None
    tokens_refunded: int | None = None
    provider: str | None = Field(default=None, max_length=64)
    attempts: int = 0
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    error_details: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    outputs: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSONB, nullable=False)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    reserved_at: datetime | None = Field(
        default=None, sa_column=_ts(nullable=True, server_default=False)
    )
    started_at: datetime | None = Field(
        default=None, sa_column=_ts(nullable=True, server_default=False)
    )
    completed_at: datetime | None = Field(
        default=None, sa_column=_ts(nullable=True, server_default=False)
    )
    settled_at: datetime | None = Field(
        default=None, sa_column=_ts(nullable=True, server_default=False)
    )


# `GET /v1/jobs`: one app's jobs newest first, ties by job id (keyset pagination).
Index(
    "ix_jobs_app_created_desc_job",
    col(JobRow.app_id),
    col(JobRow.created_at).desc(),
    col(JobRow.job_id),
)


class IdempotencyKeyRow(SQLModel, table=True):
    """One Idempotency-Key of one app: who holds it, for which request, and the first answer.

    Kept in the database (not in a replica's memory) so every gateway replica agrees.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)

    app_id: UUID = Field(foreign_key="apps.id", primary_key=True)
    key: str = Field(max_length=255, primary_key=True)
    request_hash: str = Field(max_length=64)
    state: str = Field(max_length=16)  # in_progress | completed
    owner: UUID  # the request currently holding an in_progress key
    locked_until: datetime = Field(sa_column=_ts(server_default=False))
    response_status: int | None = None
    response_body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    job_id: UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
