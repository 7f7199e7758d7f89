"""Internal HTTP API (docs/internal-apis.md, storage section)."""

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from genhub_storage.services import FileQueries


class FileOut(BaseModel):
    index: int
    key: str
    url: str | None
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    expires_at: datetime
    # Extension to the documented shape: an expired file is listed without a URL.
    expired: bool


class FilesOut(BaseModel):
    files: list[FileOut]


def build_router(queries: FileQueries) -> APIRouter:
    router = APIRouter(prefix="/internal", tags=["files"])

    @router.get("/apps/{app_id}/jobs/{job_id}/files", response_model=FilesOut)
    async def job_files(app_id: UUID, job_id: UUID) -> FilesOut:
        views = await queries.job_files(app_id, job_id)
        return FilesOut(files=[FileOut.model_validate(v, from_attributes=True) for v in views])

    return router
