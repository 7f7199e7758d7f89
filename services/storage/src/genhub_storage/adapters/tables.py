"""Storage's own tables: published output objects and the per-job outcome record."""

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import Column, DateTime, Index, UniqueConstraint, func
from sqlmodel import Field, SQLModel


class OutputObject(SQLModel, table=True):
    """One published output file. Unique per (app, job, index): a replay inserts nothing."""

    __tablename__ = "objects"
    __table_args__ = (
        UniqueConstraint("app_id", "job_id", "index", name="uq_objects_app_job_index"),
        Index("ix_objects_expires_at", "expires_at"),
        Index("ix_objects_sha256", "sha256"),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    app_id: UUID
    job_id: UUID
    index: int
    key: str = Field(max_length=512, unique=True)
    size_bytes: int
    width: int
    height: int
    content_type: str = Field(max_length=128)
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class JobOutcome(SQLModel, table=True):
    """The terminal event storage published for a job, so a job is completed only once even if
    the orchestrator sends `job.generated` again under a new event id."""

    __tablename__ = "job_outcomes"

    job_id: UUID = Field(primary_key=True)
    app_id: UUID
    status: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=64)
    completed_at: datetime = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
