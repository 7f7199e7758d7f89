"""Database access for published objects and job outcomes. Every query filters by app_id."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_storage.adapters.tables import JobOutcome, OutputObject


class ObjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

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

    async def add_objects(self, objects: Sequence[OutputObject]) -> int:
        """Insert objects; rows for an (app, job, index) already recorded are left as they are."""
        if not objects:
            return 0
        result = await self._session.exec(
            insert(OutputObject)
            .values(
                [
                    {
                        "id": o.id,
                        "app_id": o.app_id,
                        "job_id": o.job_id,
                        "index": o.index,
                        "key": o.key,
                        "size_bytes": o.size_bytes,
                        "width": o.width,
                        "height": o.height,
                        "content_type": o.content_type,
                        "sha256": o.sha256,
                        "expires_at": o.expires_at,
                    }
                    for o in objects
                ]
            )
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
