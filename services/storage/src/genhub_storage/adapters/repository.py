"""Database access for files, job outcomes, job specs and uploads. Every query filters by app_id
(the sweep's cross-tenant scans return rows that carry their app_id)."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from genhub_platform.db import Statement
from sqlalchemy import delete, func, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_storage.adapters.tables import JobOutcome, JobSpecRow, OutputObject, UploadObject
from genhub_storage.domain.policy import SpecFacts

# Column arrays: one statement text whatever the batch size, sent straight to asyncpg.
_SAVE_SPECS = Statement(
    "INSERT INTO job_specs (job_id, app_id, user_id, plan, watermark_text, watermark_position,"
    " watermark_opacity, retention_days, dpi)"
    " SELECT * FROM unnest(CAST(:jobs AS uuid[]), CAST(:apps AS uuid[]), CAST(:users AS text[]),"
    " CAST(:plans AS text[]), CAST(:texts AS text[]), CAST(:positions AS text[]),"
    " CAST(:opacities AS float8[]), CAST(:retentions AS int[]), CAST(:dpis AS int[]))"
    " ON CONFLICT (job_id) DO NOTHING"
)
_OBJECT_FIELDS = (
    "id",
    "app_id",
    "job_id",
    "index",
    "user_id",
    "key",
    "thumbnail_key",
    "size_bytes",
    "width",
    "height",
    "content_type",
    "sha256",
    "watermark",
    "expires_at",
)


class ObjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def commit(self) -> None:
        await self._session.commit()

    # -- outcomes -------------------------------------------------------------------------

    async def outcome(self, app_id: UUID, job_id: UUID) -> JobOutcome | None:
        result = await self._session.exec(
            select(JobOutcome).where(JobOutcome.job_id == job_id, JobOutcome.app_id == app_id)
        )
        return result.first()

    async def record_outcome(self, outcome: JobOutcome) -> bool:
        """Insert the job's outcome; False when one is already recorded (nothing changes)."""
        result = await self._session.exec(
            insert(JobOutcome)
            .values(
                job_id=outcome.job_id,
                app_id=outcome.app_id,
                status=outcome.status,
                error_code=outcome.error_code,
            )
            .on_conflict_do_nothing(index_elements=["job_id"])
            .returning(col(JobOutcome.job_id))
        )
        return result.first() is not None

    # -- job specs ------------------------------------------------------------------------

    async def save_specs(self, specs: Sequence[SpecFacts]) -> None:
        """Insert many job specs in one statement; a job already recorded keeps its row."""
        if not specs:
            return
        # One row per job even within a batch (ON CONFLICT cannot touch a row twice).
        rows = list({spec.job_id: spec for spec in reversed(specs)}.values())
        await _SAVE_SPECS.execute(
            self._session,
            jobs=[r.job_id for r in rows],
            apps=[r.app_id for r in rows],
            users=[r.user_id for r in rows],
            plans=[r.plan for r in rows],
            texts=[r.watermark_text for r in rows],
            positions=[r.watermark_position for r in rows],
            opacities=[r.watermark_opacity for r in rows],
            retentions=[r.retention_days for r in rows],
            dpis=[r.dpi for r in rows],
        )

    async def spec(self, app_id: UUID, job_id: UUID) -> JobSpecRow | None:
        result = await self._session.exec(
            select(JobSpecRow).where(JobSpecRow.job_id == job_id, JobSpecRow.app_id == app_id)
        )
        return result.first()

    async def prune_specs(self, created_before: datetime) -> int:
        result = await self._session.exec(
            delete(JobSpecRow).where(col(JobSpecRow.created_at) < created_before)
        )
        return int(result.rowcount or 0)

    # -- files ----------------------------------------------------------------------------

    async def add_objects(self, objects: Sequence[OutputObject]) -> int:
        """Insert objects; rows for an (app, job, index) already recorded are left as they are."""
        if not objects:
            return 0
        result = await self._session.exec(
            insert(OutputObject)
            .values([{f: getattr(o, f) for f in _OBJECT_FIELDS} for o in objects])
            .on_conflict_do_nothing(index_elements=["app_id", "job_id", "index"])
            .returning(col(OutputObject.id))
        )
        return len(result.all())

    async def job_files(self, app_id: UUID, job_id: UUID) -> list[OutputObject]:
        result = await self._session.exec(
            select(OutputObject)
            .where(OutputObject.app_id == app_id, OutputObject.job_id == job_id)
            .order_by(col(OutputObject.index))
        )
        return list(result.all())

    async def lock_content(self, app_id: UUID, sha256: str) -> None:
        """Serialise everyone who adds or drops a reference to this app's bytes (until commit)."""
        conn = await self._session.connection()
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"{app_id}:{sha256}"},
        )

    async def file_with_content(self, app_id: UUID, sha256: str) -> OutputObject | None:
        result = await self._session.exec(
            select(OutputObject)
            .where(OutputObject.app_id == app_id, OutputObject.sha256 == sha256)
            .limit(1)
        )
        return result.first()

    async def file_by_key(self, app_id: UUID, key: str) -> OutputObject | None:
        result = await self._session.exec(
            select(OutputObject)
            .where(OutputObject.app_id == app_id, OutputObject.key == key)
            .order_by(col(OutputObject.expires_at).desc())
            .limit(1)
        )
        return result.first()

    async def key_referenced(self, app_id: UUID, key: str) -> bool:
        result = await self._session.exec(
            select(func.count())
            .select_from(OutputObject)
            .where(
                OutputObject.app_id == app_id,
                (col(OutputObject.key) == key) | (col(OutputObject.thumbnail_key) == key),
            )
        )
        return bool(result.one())

    async def expired_files(self, now: datetime, limit: int) -> list[OutputObject]:
        result = await self._session.exec(
            select(OutputObject)
            .where(col(OutputObject.expires_at) <= now)
            .order_by(col(OutputObject.expires_at))
            .limit(limit)
        )
        return list(result.all())

    async def files_of(self, app_id: UUID, user_id: str | None, limit: int) -> list[OutputObject]:
        query = select(OutputObject).where(OutputObject.app_id == app_id)
        if user_id is not None:
            query = query.where(OutputObject.user_id == user_id)
        result = await self._session.exec(query.limit(limit))
        return list(result.all())

    async def delete_files(self, app_id: UUID, ids: Sequence[UUID]) -> None:
        await self._session.exec(
            delete(OutputObject).where(
                col(OutputObject.app_id) == app_id, col(OutputObject.id).in_(list(ids))
            )
        )

    # -- uploads --------------------------------------------------------------------------

    async def add_upload(self, upload: UploadObject) -> None:
        self._session.add(upload)
        await self._session.flush()

    async def upload(self, app_id: UUID, key: str) -> UploadObject | None:
        result = await self._session.exec(
            select(UploadObject).where(UploadObject.app_id == app_id, UploadObject.key == key)
        )
        return result.first()

    async def expired_uploads(self, now: datetime, limit: int) -> list[UploadObject]:
        result = await self._session.exec(
            select(UploadObject)
            .where(col(UploadObject.expires_at) <= now)
            .order_by(col(UploadObject.expires_at))
            .limit(limit)
        )
        return list(result.all())

    async def uploads_of(self, app_id: UUID, user_id: str | None, limit: int) -> list[UploadObject]:
        query = select(UploadObject).where(UploadObject.app_id == app_id)
        if user_id is not None:
            query = query.where(UploadObject.user_id == user_id)
        result = await self._session.exec(query.limit(limit))
        return list(result.all())

    async def delete_uploads(self, app_id: UUID, keys: Sequence[str]) -> None:
        await self._session.exec(
            delete(UploadObject).where(
                col(UploadObject.app_id) == app_id, col(UploadObject.key).in_(list(keys))
            )
        )

    async def erase_specs(self, app_id: UUID, user_id: str | None) -> None:
        query = delete(JobSpecRow).where(col(JobSpecRow.app_id) == app_id)
        if user_id is not None:
            query = query.where(col(JobSpecRow.user_id) == user_id)
        await self._session.exec(query)
