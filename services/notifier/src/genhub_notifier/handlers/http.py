"""Internal HTTP API (docs/internal-apis.md): endpoints, signing secrets, the delivery log."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from genhub_platform.deps import UowDep
from pydantic import AwareDatetime, BaseModel, Field

from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.services import deliveries, secrets
from genhub_notifier.services.endpoints import _UNSET, EndpointChanges, EndpointService


class SecretOut(BaseModel):
    secret: str


class EndpointIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048)
    description: str = ""
    event_types: list[str] | None = None
    enabled: bool = True


class EndpointPatch(BaseModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    description: str | None = None
    event_types: list[str] | None = None
    enabled: bool | None = None


class ReplayIn(BaseModel):
    since: AwareDatetime
    # failed: every delivery that ended without success (dead letters too); dead_lettered: only
    # the ones that exhausted their schedule.
    status: Literal["failed", "dead_lettered"] = "failed"
    endpoint_id: UUID | None = None


def _one(name: str, view: dict[str, Any]) -> dict[str, Any]:
    """A single object: its fields at the top level, and also under `name` (like POST)."""
    return {**view, name: view}


def router(box: SecretBox, endpoints: EndpointService, rotation_grace: timedelta) -> APIRouter:
    api = APIRouter(prefix="/internal/apps/{app_id}", tags=["notifier"])

    @api.post("/signing-secret", status_code=201, response_model=SecretOut)
    async def create_signing_secret(
        app_id: UUID, uow: UowDep, rotate: Annotated[bool, Query()] = False
    ) -> SecretOut:
        secret = await secrets.create_signing_secret(
            uow, box, app_id, rotate=rotate, grace=rotation_grace
        )
        return SecretOut(secret=secret)

    # --- endpoints ------------------------------------------------------------------------------

    @api.post("/endpoints", status_code=201)
    async def create_endpoint(app_id: UUID, body: EndpointIn, uow: UowDep) -> dict[str, Any]:
        view, secret = await endpoints.create(
            uow,
            app_id,
            url=body.url,
            description=body.description,
            event_types=body.event_types,
            enabled=body.enabled,
        )
        return {"endpoint": view, "secret": secret}

    @api.get("/endpoints")
    async def list_endpoints(app_id: UUID, uow: UowDep) -> dict[str, Any]:
        return {"endpoints": await endpoints.list(uow, app_id)}

    @api.get("/endpoints/{endpoint_id}")
    async def get_endpoint(app_id: UUID, endpoint_id: UUID, uow: UowDep) -> dict[str, Any]:
        return _one("endpoint", await endpoints.get(uow, app_id, endpoint_id))

    @api.patch("/endpoints/{endpoint_id}")
    async def update_endpoint(
        app_id: UUID, endpoint_id: UUID, body: EndpointPatch, uow: UowDep
    ) -> dict[str, Any]:
        changes = EndpointChanges(
            url=body.url,
            description=body.description,
            event_types=body.event_types if "event_types" in body.model_fields_set else _UNSET,
            enabled=body.enabled,
        )
        return _one("endpoint", await endpoints.update(uow, app_id, endpoint_id, changes))

    @api.delete("/endpoints/{endpoint_id}", status_code=204)
    async def delete_endpoint(app_id: UUID, endpoint_id: UUID, uow: UowDep) -> Response:
        await endpoints.delete(uow, app_id, endpoint_id)
        return Response(status_code=204)

    @api.post("/endpoints/{endpoint_id}/rotate-secret", response_model=SecretOut)
    async def rotate_endpoint_secret(app_id: UUID, endpoint_id: UUID, uow: UowDep) -> SecretOut:
        return SecretOut(secret=await endpoints.rotate_secret(uow, app_id, endpoint_id))

    # --- deliveries -----------------------------------------------------------------------------

    @api.get("/deliveries")
    async def list_deliveries(
        app_id: UUID,
        uow: UowDep,
        status: Annotated[str | None, Query()] = None,
        job_id: Annotated[UUID | None, Query()] = None,
        endpoint_id: Annotated[UUID | None, Query()] = None,
        since: Annotated[AwareDatetime | None, Query()] = None,
        cursor: Annotated[str | None, Query(max_length=500)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        return await deliveries.delivery_log(
            uow,
            app_id,
            status=status,
            job_id=job_id,
            endpoint_id=endpoint_id,
            since=since,
            cursor=cursor,
            limit=limit,
        )

    @api.post("/deliveries/replay", status_code=202)
    async def replay_failed(app_id: UUID, body: ReplayIn, uow: UowDep) -> dict[str, int]:
        since: datetime = body.since
        return {
            "replayed": await deliveries.replay_failed(
                uow, app_id, since, body.endpoint_id, body.status
            )
        }

    @api.get("/deliveries/{delivery_id}")
    async def get_delivery(
        app_id: UUID, delivery_id: Annotated[str, Field(max_length=64)], uow: UowDep
    ) -> dict[str, Any]:
        return _one("delivery", await deliveries.get_delivery(uow, app_id, delivery_id))

    @api.post("/deliveries/{delivery_id}/replay", status_code=202)
    async def replay_delivery(app_id: UUID, delivery_id: str, uow: UowDep) -> dict[str, str]:
        return {"delivery_id": await deliveries.replay_one(uow, app_id, delivery_id)}

    return api
