"""Internal HTTP API (docs/internal-apis.md): the model catalog and its admin, provider health,
attempt statistics, plan limits and a job's run. Handlers parse, delegate, answer."""

from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from genhub_platform.deps import UowDep
from pydantic import BaseModel, ConfigDict, Field

from genhub_orchestrator.adapters.providers import ProviderRegistry
from genhub_orchestrator.services import catalog
from genhub_orchestrator.services.worker import RunWorker

router = APIRouter(prefix="/internal", tags=["internal"])

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Capability = Literal["text-to-image", "image-to-image"]
Ratio = Annotated[str, Field(pattern=r"^\d{1,2}:\d{1,2}$")]
Size = Annotated[str, Field(pattern=r"^\d{2,4}x\d{2,4}$")]
Kind = Literal["mock", "openai", "replicate", "fal", "gemini", "stability"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelPatch(_Body):
    display_name: str | None = Field(default=None, min_length=1, max_length=128)
    family: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None
    capabilities: list[Capability] | None = Field(default=None, min_length=1)
    max_input_images: int | None = Field(default=None, ge=0, le=8)
    aspect_ratios: list[Ratio] | None = None
    sizes: list[Size] | None = None
    max_outputs: int | None = Field(default=None, ge=1, le=4)


class ModelCreate(ModelPatch):
    name: Name
    display_name: str = Field(min_length=1, max_length=128)
    capabilities: list[Capability] = Field(default_factory=lambda: ["text-to-image"], min_length=1)


class ProviderPatch(_Body):
    display_name: str | None = Field(default=None, max_length=128)
    kind: Kind | None = None
    enabled: bool | None = None
    credentials_env: str | None = Field(default=None, max_length=128, pattern=r"^[A-Z][A-Z0-9_]*$")
    settings: dict[str, Any] | None = None
    max_concurrency: int | None = Field(default=None, ge=0, le=10_000)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)


class ProviderCreate(ProviderPatch):
    name: Name
    kind: Kind


class RoutePatch(_Body):
    provider_model_id: str | None = Field(default=None, min_length=1, max_length=256)
    priority: int | None = Field(default=None, ge=0, le=10_000)
    cost_usd: Decimal | None = Field(default=None, ge=0, le=1000, decimal_places=6)
    enabled: bool | None = None
    settings: dict[str, Any] | None = None


class RouteCreate(RoutePatch):
    model: Name
    provider: Name
    provider_model_id: str = Field(min_length=1, max_length=256)
    priority: int = Field(default=100, ge=0, le=10_000)
    cost_usd: Decimal = Field(default=Decimal(0), ge=0, le=1000, decimal_places=6)


def _set(body: BaseModel) -> dict[str, Any]:
    """Only the fields the caller sent (PATCH semantics); explicit nulls kept where allowed."""
    return body.model_dump(exclude_unset=True)


def _worker(request: Request) -> RunWorker:
    worker: RunWorker = request.app.state.worker
    return worker


def _edited(request: Request, view: dict[str, Any]) -> dict[str, Any]:
    """A catalog edit: this process routes with the new catalog at once (others within
    ORCHESTRATOR_CATALOG_TTL_S)."""
    _worker(request).invalidate_catalog()
    return view


def _registry(request: Request) -> ProviderRegistry:
    registry: ProviderRegistry = request.app.state.registry
    return registry


@router.get("/models")
async def list_models(request: Request, uow: UowDep) -> dict[str, Any]:
    return {"models": await catalog.list_models(uow, _registry(request))}


@router.get("/providers")
async def list_providers(request: Request, uow: UowDep) -> dict[str, Any]:
    return {"providers": await catalog.list_providers(uow, _registry(request))}


@router.get("/providers/health")
async def providers_health(request: Request, uow: UowDep) -> dict[str, Any]:
    return {"providers": await catalog.provider_health(uow, _worker(request).health.view)}


@router.get("/catalog/models")
async def catalog_models(request: Request, uow: UowDep) -> dict[str, Any]:
    return {"models": await catalog.list_models(uow, _registry(request))}


@router.post("/catalog/models", status_code=201)
async def create_model(body: ModelCreate, request: Request, uow: UowDep) -> dict[str, Any]:
    return _edited(
        request,
        await catalog.create_model(
            uow, _set(body) | {"name": body.name, "display_name": body.display_name}
        ),
    )


@router.patch("/catalog/models/{name}")
async def update_model(
    name: str, body: ModelPatch, request: Request, uow: UowDep
) -> dict[str, Any]:
    return _edited(request, await catalog.update_model(uow, name, _set(body)))


@router.get("/catalog/providers")
async def catalog_providers(request: Request, uow: UowDep) -> dict[str, Any]:
    return {"providers": await catalog.list_providers(uow, _registry(request))}


@router.post("/catalog/providers", status_code=201)
async def create_provider(body: ProviderCreate, request: Request, uow: UowDep) -> dict[str, Any]:
    return _edited(
        request,
        await catalog.create_provider(
            uow, _set(body) | {"name": body.name, "kind": body.kind}, _registry(request)
        ),
    )


@router.patch("/catalog/providers/{name}")
async def update_provider(
    name: str, body: ProviderPatch, request: Request, uow: UowDep
) -> dict[str, Any]:
    return _edited(
        request, await catalog.update_provider(uow, name, _set(body), _registry(request))
    )


@router.get("/catalog/routes")
async def catalog_routes(uow: UowDep) -> dict[str, Any]:
    return {"routes": await catalog.list_routes(uow)}


@router.post("/catalog/routes", status_code=201)
async def create_route(body: RouteCreate, request: Request, uow: UowDep) -> dict[str, Any]:
    fields = _set(body) | {
        "model": body.model,
        "provider": body.provider,
        "provider_model_id": body.provider_model_id,
        "priority": body.priority,
        "cost_usd": body.cost_usd,
    }
    return _edited(request, await catalog.create_route(uow, fields))


@router.patch("/catalog/routes/{route_id}")
async def update_route(
    route_id: int, body: RoutePatch, request: Request, uow: UowDep
) -> dict[str, Any]:
    return _edited(request, await catalog.update_route(uow, route_id, _set(body)))


@router.get("/plan-limits")
async def get_plan_limits(uow: UowDep) -> dict[str, int]:
    return await catalog.get_plan_limits(uow)


@router.put("/plan-limits")
async def put_plan_limits(body: dict[str, Any], uow: UowDep) -> dict[str, int]:
    return await catalog.put_plan_limits(uow, body)


@router.get("/stats")
async def stats(
    uow: UowDep, since_hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24.0
) -> dict[str, Any]:
    return await catalog.stats(uow, since_hours)


@router.get("/worker")
async def worker_view(request: Request) -> dict[str, Any]:
    """This process's lease identity and load (which replica runs what)."""
    return _worker(request).describe()


@router.get("/apps/{app_id}/runs/{job_id}")
async def get_run(app_id: UUID, job_id: UUID, uow: UowDep) -> dict[str, Any]:
    return await catalog.get_run(uow, app_id, job_id)
