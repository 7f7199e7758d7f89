"""Internal HTTP API (docs/internal-apis.md, storage section). Handlers translate only."""

from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from genhub_storage.services import FileQueries, InputStore, Lifecycle
from genhub_storage.services.files import FileUrl, FileView
from genhub_storage.services.inputs import UploadView, too_large


class FilesOut(BaseModel):
    files: list[FileView]


class ImportIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048)
    user_id: str | None = Field(default=None, max_length=128)


class EraseIn(BaseModel):
    user_id: str | None = Field(default=None, min_length=1, max_length=128)


class EraseOut(BaseModel):
    objects_deleted: int


async def read_capped(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise too_large(max_bytes)
    return bytes(body)


def build_router(
    queries: FileQueries, inputs: InputStore | None = None, lifecycle: Lifecycle | None = None
) -> APIRouter:
    router = APIRouter(prefix="/internal", tags=["storage"])

    @router.get("/apps/{app_id}/jobs/{job_id}/files", response_model=FilesOut)
    async def job_files(app_id: UUID, job_id: UUID) -> FilesOut:
        return FilesOut(files=await queries.job_files(app_id, job_id))

    @router.get("/apps/{app_id}/jobs/{job_id}/files/{index}/url", response_model=FileUrl)
    async def file_url(
        app_id: UUID,
        job_id: UUID,
        index: int,
        download: bool = False,
        filename: str | None = Query(default=None, max_length=200),
    ) -> FileUrl:
        return await queries.file_url(app_id, job_id, index, download=download, filename=filename)

    if inputs is not None:
        store = inputs

        @router.post("/apps/{app_id}/uploads", status_code=201, response_model=UploadView)
        async def upload(
            app_id: UUID,
            request: Request,
            filename: str | None = Query(default=None, max_length=255),
            user_id: str | None = Query(default=None, max_length=128),
        ) -> UploadView:
            data = await read_capped(request, store.max_bytes)
            return await store.upload(app_id, data, filename=filename, user_id=user_id)

        @router.get("/apps/{app_id}/uploads/{key:path}", response_model=UploadView)
        async def get_upload(app_id: UUID, key: str) -> UploadView:
            return await store.get(app_id, key)

        @router.post("/apps/{app_id}/imports", status_code=201, response_model=UploadView)
        async def import_url(app_id: UUID, body: ImportIn) -> UploadView:
            return await store.import_url(app_id, body.url, user_id=body.user_id)

    if lifecycle is not None:
        life = lifecycle

        @router.post("/apps/{app_id}/erase", response_model=EraseOut)
        async def erase(app_id: UUID, body: EraseIn) -> EraseOut:
            return EraseOut(objects_deleted=await life.erase(app_id, body.user_id))

        @router.post("/sweep")
        async def sweep() -> dict[str, int]:
            report = await life.sweep()
            return {
                "files_deleted": report.files_deleted,
                "objects_deleted": report.objects_deleted,
                "uploads_deleted": report.uploads_deleted,
                "staging_deleted": report.staging_deleted,
                "specs_deleted": report.specs_deleted,
            }

    return router
