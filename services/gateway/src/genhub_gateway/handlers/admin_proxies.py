"""Admin faces of settings other services own: billing (app settings, pricing, plans) and the
orchestrator (catalog, stats, provider health, plan limits). Each forwards to the owner;
every change is written to the gateway's audit log with the request and the owner's answer."""

from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Response
from fastapi.responses import JSONResponse
from genhub_platform.deps import UowDep
from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_gateway import audit
from genhub_gateway.handlers.deps import Actor, AdminDep, Gateway, GatewayDep

router = APIRouter(prefix="/admin", tags=["admin: billing and catalog"])

JsonBody = Body(
    description="passed to the owning service, which validates it (422 with field details)",
    examples=[{"plan": "pro", "free_daily_quota": 3}],
)


def _seg(value: str | UUID) -> str:
    return quote(str(value), safe="")


Owner = Literal["billing", "orchestrator"]


@dataclass(frozen=True)
class Forward:
    """An authenticated admin's request to the service that owns the setting. `uow` (changes
    only) writes the audit entry."""

    gateway: Gateway
    actor: Actor
    uow: UnitOfWork | None = None

    async def read(self, owner: Owner, path: str) -> Response:
        return await self._send(owner, "GET", path)

    async def change(
        self,
        owner: Owner,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        action: str,
        target: tuple[str, str],
        app_id: UUID | None = None,
    ) -> Response:
        """Forward, then record (actor, action, target type and id, app) with the request
        as `before`-less input and the owner's answer as `after`."""
        return await self._send(owner, method, path, body, (action, target, app_id))

    async def _send(
        self,
        owner: Owner,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        audited: tuple[str, tuple[str, str], UUID | None] | None = None,
    ) -> Response:
        upstreams = self.gateway.upstreams
        upstream = upstreams.billing if owner == "billing" else upstreams.orchestrator
        code, answer = await upstream.forward(method, path, json=body)
        if audited is not None:
            if self.uow is None:
                raise RuntimeError("a change is forwarded with ChangeDep (it is audited)")
            action, (target_type, target_id), app_id = audited
            audit.record(
                self.uow.session,
                actor=self.actor.name,
                request_id=self.actor.request_id,
                action=action,
                target_type=target_type,
                target_id=target_id,
                app_id=app_id,
                before=None,
                after={"request": body, "result": answer},
            )
            await self.uow.commit()
        if code == 204 or not answer:
            return Response(status_code=code)
        return JSONResponse(answer, status_code=code)


async def _reader(actor: AdminDep, gateway: GatewayDep) -> Forward:
    return Forward(gateway, actor)


async def _changer(actor: AdminDep, gateway: GatewayDep, uow: UowDep) -> Forward:
    return Forward(gateway, actor, uow)


ReadDep = Annotated[Forward, Depends(_reader)]
ChangeDep = Annotated[Forward, Depends(_changer)]


# --- billing ------------------------------------------------------------------------------------


@router.get("/apps/{app_id}/billing")
async def get_billing_settings(app_id: UUID, admin: ReadDep) -> Response:
    """The app's billing settings: plan, monthly plan allocations, free daily quota,
    low-balance threshold, budget."""
    return await admin.read("billing", f"/internal/apps/{_seg(app_id)}/settings")


@router.put("/apps/{app_id}/billing")
async def put_billing_settings(
    app_id: UUID, admin: ChangeDep, body: dict[str, Any] = JsonBody
) -> Response:
    """Change billing settings (`plan`, `monthly_allocations` — whether the app's end users
    get their plan's monthly tokens, on by default —, `free_daily_quota`,
    `low_balance_threshold`, `monthly_budget_usd`, `soft_cap_ratio`; all optional)."""
    path = f"/internal/apps/{_seg(app_id)}/settings"
    return await admin.change(
        "billing",
        "PUT",
        path,
        body,
        action="billing.settings.update",
        target=("app", str(app_id)),
        app_id=app_id,
    )


@router.get("/pricing")
async def get_pricing(admin: ReadDep) -> Response:
    """Price rules: base tokens per model and per-app overrides."""
    return await admin.read("billing", "/internal/pricing")


@router.put("/pricing/{model}")
async def put_pricing(model: str, admin: ChangeDep, body: dict[str, Any] = JsonBody) -> Response:
    """Set a model's price (`base_tokens`, multipliers)."""
    path = f"/internal/pricing/{_seg(model)}"
    return await admin.change(
        "billing", "PUT", path, body, action="pricing.update", target=("model", model)
    )


@router.put("/apps/{app_id}/pricing/{model}")
async def put_app_pricing(
    app_id: UUID, model: str, admin: ChangeDep, body: dict[str, Any] = JsonBody
) -> Response:
    """Override a model's price for one app."""
    path = f"/internal/apps/{_seg(app_id)}/pricing/{_seg(model)}"
    return await admin.change(
        "billing",
        "PUT",
        path,
        body,
        action="pricing.override",
        target=("model", model),
        app_id=app_id,
    )


@router.delete("/apps/{app_id}/pricing/{model}")
async def delete_app_pricing(app_id: UUID, model: str, admin: ChangeDep) -> Response:
    """Remove an app's price override (the model's price applies again)."""
    path = f"/internal/apps/{_seg(app_id)}/pricing/{_seg(model)}"
    return await admin.change(
        "billing",
        "DELETE",
        path,
        None,
        action="pricing.override.delete",
        target=("model", model),
        app_id=app_id,
    )


@router.get("/plans")
async def get_plans(admin: ReadDep) -> Response:
    """Plans and their monthly token allowance."""
    return await admin.read("billing", "/internal/plans")


@router.put("/plans/{plan}")
async def put_plan(plan: str, admin: ChangeDep, body: dict[str, Any] = JsonBody) -> Response:
    """Change a plan's `monthly_tokens`."""
    path = f"/internal/plans/{_seg(plan)}"
    return await admin.change(
        "billing", "PUT", path, body, action="plan.update", target=("plan", plan)
    )


# --- orchestrator -------------------------------------------------------------------------------

_CATALOG_KINDS = {"models": "model", "providers": "provider", "routes": "route"}


@router.get("/catalog/{kind}")
async def list_catalog(kind: str, admin: ReadDep) -> Response:
    """`models`, `providers` or `routes` of the orchestrator's catalog."""
    _catalog_kind(kind)
    return await admin.read("orchestrator", f"/internal/catalog/{kind}")


@router.post("/catalog/{kind}", status_code=201)
async def create_catalog_entry(
    kind: str, admin: ChangeDep, body: dict[str, Any] = JsonBody
) -> Response:
    """Add a model or a route."""
    target = _catalog_kind(kind)
    name = str(body.get("name", ""))
    answer = await admin.change(
        "orchestrator",
        "POST",
        f"/internal/catalog/{kind}",
        body,
        action=f"catalog.{target}.create",
        target=(target, name),
    )
    admin.gateway.catalog.invalidate()
    return answer


@router.patch("/catalog/{kind}/{name}")
async def update_catalog_entry(
    kind: str, name: str, admin: ChangeDep, body: dict[str, Any] = JsonBody
) -> Response:
    """Change a model, a provider or a route (by name, or id for routes)."""
    target = _catalog_kind(kind)
    answer = await admin.change(
        "orchestrator",
        "PATCH",
        f"/internal/catalog/{kind}/{_seg(name)}",
        body,
        action=f"catalog.{target}.update",
        target=(target, name),
    )
    admin.gateway.catalog.invalidate()
    return answer


def _catalog_kind(kind: str) -> str:
    if kind not in _CATALOG_KINDS:
        raise ApiError(404, "not_found", "Catalog kinds are models, providers and routes.")
    return _CATALOG_KINDS[kind]


@router.get("/stats")
async def get_stats(admin: ReadDep) -> Response:
    """Per provider and model: success rate, latency percentiles, cost, attempts."""
    return await admin.read("orchestrator", "/internal/stats")


@router.get("/providers/health")
async def get_provider_health(admin: ReadDep) -> Response:
    return await admin.read("orchestrator", "/internal/providers/health")


@router.get("/plan-limits")
async def get_plan_limits(admin: ReadDep) -> Response:
    """Concurrent jobs per end user, by plan."""
    return await admin.read("orchestrator", "/internal/plan-limits")


@router.put("/plan-limits")
async def put_plan_limits(admin: ChangeDep, body: dict[str, Any] = JsonBody) -> Response:
    return await admin.change(
        "orchestrator",
        "PUT",
        "/internal/plan-limits",
        body,
        action="plan_limits.update",
        target=("plan_limits", "all"),
    )
