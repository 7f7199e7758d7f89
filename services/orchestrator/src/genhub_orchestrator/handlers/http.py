"""Internal HTTP API: the model catalog, providers and a job's run (docs/internal-apis.md)."""

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from genhub_platform.deps import UowDep

from genhub_orchestrator.services import catalog

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get("/models")
async def list_models(uow: UowDep) -> dict[str, Any]:
    return {"models": await catalog.list_models(uow)}


@router.get("/providers")
async def list_providers(uow: UowDep) -> dict[str, Any]:
    return {"providers": await catalog.list_providers(uow)}


@router.get("/apps/{app_id}/runs/{job_id}")
async def get_run(app_id: UUID, job_id: UUID, uow: UowDep) -> dict[str, Any]:
    return await catalog.get_run(uow, app_id, job_id)
