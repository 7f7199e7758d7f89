"""Internal HTTP API (docs/internal-apis.md): signing secrets and the delivery log."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from genhub_platform.deps import UowDep
from pydantic import BaseModel

from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.services import deliveries, secrets


class SecretOut(BaseModel):
    secret: str


def router(box: SecretBox) -> APIRouter:
    api = APIRouter(prefix="/internal/apps/{app_id}", tags=["notifier"])

    @api.post("/signing-secret", status_code=201, response_model=SecretOut)
    async def create_signing_secret(
        app_id: UUID, uow: UowDep, rotate: Annotated[bool, Query()] = False
    ) -> SecretOut:
        secret = await secrets.create_signing_secret(uow, box, app_id, rotate=rotate)
        return SecretOut(secret=secret)

    @api.get("/deliveries")
    async def list_deliveries(
        app_id: UUID,
        uow: UowDep,
        job_id: Annotated[UUID | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        return {"deliveries": await deliveries.delivery_log(uow, app_id, job_id, limit)}

    return api
