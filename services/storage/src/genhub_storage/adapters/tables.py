"""Tables: published files, per-job outcome, per-job spec snapshot, uploaded inputs."""

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import Column, DateTime, Index, UniqueConstraint, func
from sqlmodel import Field, SQLModel


def _now_column() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class OutputObject(SQLModel, table=True):
    """One published output file of a job. Unique per (app, job, index): a replay inserts
    nothing. Several rows may share a `key` (identical bytes stored once per app); an object is
    deleted only when no row references it any more."""

    __tablename__ = "objects"
    __table_args__ = (
        UniqueConstraint("app_id", "job_id", "index", name="uq_objects_app_job_index"),
        Index("ix_objects_expires_at", "expires_at"),
        Index("ix_objects_app_sha256", "app_id", "sha256"),
        Index("ix_objects_app_key", "app_id", "key"),
        Index("ix_objects_app_user", "app_id", "user_id"),
    )

    id: UUID = Field(default_factory=uuid4, primary_key=True)
    app_id: UUID
    job_id: UUID
    index: int
    user_id: str | None = Field(default=None, max_length=128)
    key: str = Field(max_length=512)
    thumbnail_key: str | None = Field(default=None, max_length=512)
    size_bytes: int
    width: int
    height: int
    content_type: str = Field(max_length=128)
    sha256: str = Field(max_length=64)
    watermark: str | None = Field(default=None, max_length=200)  # images.watermark_signature
    created_at: datetime = Field(default=None, sa_column=_now_column())
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class JobOutcome(SQLModel, table=True):
    """The terminal event storage published for a job, so a job is completed only once even if
    the orchestrator sends `job.generated` again under a new event id."""

    __tablename__ = "job_outcomes"

    job_id: UUID = Field(primary_key=True)
    app_id: UUID
    status: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=64)
    completed_at: datetime = Field(default=None, sa_column=_now_column())


class JobSpecRow(SQLModel, table=True):
    """What storage needs from the job's spec (job.requested), since job.generated lacks it."""

    __tablename__ = "job_specs"
    __table_args__ = (Index("ix_job_specs_created_at", "created_at"),)

    job_id: UUID = Field(primary_key=True)
    app_id: UUID
    user_id: str = Field(max_length=128)
    plan: str = Field(max_length=32)
    watermark_text: str | None = Field(default=None, max_length=64)
    watermark_position: str | None = Field(default=None, max_length=16)
    watermark_opacity: float | None = None
    retention_days: int
    dpi: int | None = None
    created_at: datetime = Field(default=None, sa_column=_now_column())


class UploadObject(SQLModel, table=True):
    """An input image under inputs/{app_id}/ (uploaded or imported from a URL)."""

    __tablename__ = "uploads"
    __table_args__ = (
        Index("ix_uploads_app", "app_id"),
        Index("ix_uploads_expires_at", "expires_at"),
    )

    key: str = Field(primary_key=True, max_length=512)
    app_id: UUID
    user_id: str | None = Field(default=None, max_length=128)
    filename: str | None = Field(default=None, max_length=255)
    source_url: str | None = Field(default=None, max_length=2048)
    content_type: str = Field(max_length=128)
    width: int
    height: int
    size_bytes: int
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default=None, sa_column=_now_column())
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
