"""formats, thumbnails, dedupe, job specs, uploads

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


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    # Identical bytes are stored once per app: several rows may now share a key.
    op.drop_constraint("uq_objects_key", "objects", type_="unique")
    op.drop_index("ix_objects_sha256", table_name="objects")
    op.add_column("objects", sa.Column("user_id", sa.String(length=128), nullable=True))
    op.add_column("objects", sa.Column("thumbnail_key", sa.String(length=512), nullable=True))
    op.add_column("objects", sa.Column("watermark", sa.String(length=200), nullable=True))
    op.create_index("ix_objects_app_sha256", "objects", ["app_id", "sha256"])
    op.create_index("ix_objects_app_key", "objects", ["app_id", "key"])
    op.create_index("ix_objects_app_user", "objects", ["app_id", "user_id"])
    op.create_table(
        "job_specs",
        sa.Column("job_id", sa.Uuid(), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("watermark_text", sa.String(length=64), nullable=True),
        sa.Column("watermark_position", sa.String(length=16), nullable=True),
        sa.Column("watermark_opacity", sa.Float(), nullable=True),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("dpi", sa.Integer(), nullable=True),
        _created_at(),
    )
    op.create_index("ix_job_specs_created_at", "job_specs", ["created_at"])
    op.create_table(
        "uploads",
        sa.Column("key", sa.String(length=512), primary_key=True),
        sa.Column("app_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("source_url", sa.String(length=2048), nullable=True),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        _created_at(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_uploads_app", "uploads", ["app_id"])
    op.create_index("ix_uploads_expires_at", "uploads", ["expires_at"])


def downgrade() -> None:
    op.drop_table("uploads")
    op.drop_table("job_specs")
    op.drop_index("ix_objects_app_user", table_name="objects")
    op.drop_index("ix_objects_app_key", table_name="objects")
    op.drop_index("ix_objects_app_sha256", table_name="objects")
    op.drop_column("objects", "watermark")
    op.drop_column("objects", "thumbnail_key")
    op.drop_column("objects", "user_id")
    op.create_index("ix_objects_sha256", "objects", ["sha256"])
    # 0001 had one row per key: rows that share an object (dedupe) keep only the oldest.
    op.execute(
        "DELETE FROM objects o USING objects keep "
        "WHERE o.key = keep.key AND (o.created_at, o.id) > (keep.created_at, keep.id)"
    )
    op.create_unique_constraint("uq_objects_key", "objects", ["key"])
