"""Admin faces of settings other services own: billing (app settings, pricing, plans) and the
orchestrator (catalog, stats, provider health, plan limits). Each forwards to the owner;
every change is written to the gateway's audit log with the request and the owner's answer."""

from typing import Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse
from genhub_platform.deps import UowDep
from genhub_platform.errors import ApiError

from genhub_gateway import audit
from genhub_gateway.adapters.upstream import UpstreamClient
from genhub_gateway.handlers.deps import Actor, AdminDep, GatewayDep

router = APIRouter(prefix="/admin", tags=["admin: billing and catalog"])

JsonBody = Body(
    description="passed to the owning service, which validates it (422 with field details)",
    examples=[{"plan": "pro", "free_daily_quota": 3}],
)


def _seg(value: str | UUID) -> str:
    return quote(str(value), safe="")


async def _proxy(
    upstream: UpstreamClient,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    audited: tuple[Actor, UowDep, str, str, str, UUID | None] | None = None,
) -> Response:
    """Forward; for a change, record (actor, action, target type, target id, app) with the
    request as `before`-less input and the owner's answer as `after`."""
    code, answer = await upstream.forward(method, path, json=body)
    if audited is not None:
        actor, uow, action, target_type, target_id, app_id = audited
        audit.record(
            uow.session,
            actor=actor.name,
            request_id=actor.request_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            app_id=app_id,
            before=None,
            after={"request": body, "result": answer},
        )
        await uow.commit()
    if code == 204 or not answer:
        return Response(status_code=code)
    return JSONResponse(answer, status_code=code)


# --- billing ------------------------------------------------------------------------------------


@router.get("/apps/{app_id}/billing")
async def get_billing_settings(app_id: UUID, _: AdminDep, gateway: GatewayDep) -> Response:
    """The app's billing settings: plan, monthly plan allocations, free daily quota,
    low-balance threshold, budget."""
    billing = gateway.upstreams.billing
    return await _proxy(billing, "GET", f"/internal/apps/{_seg(app_id)}/settings")


@router.put("/apps/{app_id}/billing")
async def put_billing_settings(
    app_id: UUID,
    actor: AdminDep,
    gateway: GatewayDep,
    uow: UowDep,
    body: dict[str, Any] = JsonBody,
) -> Response:
    """Change billing settings (`plan`, `monthly_allocations` — whether the app's end users
    get their plan's monthly tokens, on by default —, `free_daily_quota`,
    `low_balance_threshold`, `monthly_budget_usd`, `soft_cap_ratio`; all optional)."""
    return await _proxy(
        gateway.upstreams.billing,
        "PUT",
        f"/internal/apps/{_seg(app_id)}/settings",
        body=body,
        audited=(actor, uow, "billing.settings.update", "app", str(app_id), app_id),
    )


@router.get("/pricing")
async def get_pricing(_: AdminDep, gateway: GatewayDep) -> Response:
    """Price rules: base tokens per model and per-app overrides."""
    return await _proxy(gateway.upstreams.billing, "GET", "/internal/pricing")


@router.put("/pricing/{model}")
async def put_pricing(
    model: str, actor: AdminDep, gateway: GatewayDep, uow: UowDep, body: dict[str, Any] = JsonBody
) -> Response:
    """Set a model's price (`base_tokens`, multipliers)."""
    return await _proxy(
        gateway.upstreams.billing,
        "PUT",
        f"/internal/pricing/{_seg(model)}",
        body=body,
        audited=(actor, uow, "pricing.update", "model", model, None),
    )


@router.put("/apps/{app_id}/pricing/{model}")
async def put_app_pricing(
    app_id: UUID,
    model: str,
    actor: AdminDep,
    gateway: GatewayDep,
    uow: UowDep,
    body: dict[str, Any] = JsonBody,
) -> Response:
    """Override a model's price for one app."""
    return await _proxy(
        gateway.upstreams.billing,
        "PUT",
        f"/internal/apps/{_seg(app_id)}/pricing/{_seg(model)}",
        body=body,
        audited=(actor, uow, "pricing.override", "model", model, app_id),
    )


@router.delete("/apps/{app_id}/pricing/{model}")
async def delete_app_pricing(
    app_id: UUID, model: str, actor: AdminDep, gateway: GatewayDep, uow: UowDep
) -> Response:
    """Remove an app's price override (the model's price applies again)."""
    return await _proxy(
        gateway.upstreams.billing,
        "DELETE",
        f"/internal/apps/{_seg(app_id)}/pricing/{_seg(model)}",
        audited=(actor, uow, "pricing.override.delete", "model", model, app_id),
    )


@router.get("/plans")
async def get_plans(_: AdminDep, gateway: GatewayDep) -> Response:
    """Plans and their monthly token allowance."""
    return await _proxy(gateway.upstreams.billing, "GET", "/internal/plans")


@router.put("/plans/{plan}")
async def put_plan(
    plan: str, actor: AdminDep, gateway: GatewayDep, uow: UowDep, body: dict[str, Any] = JsonBody
) -> Response:
    """Change a plan's `monthly_tokens`."""
    return await _proxy(
        gateway.upstreams.billing,
        "PUT",
        f"/internal/plans/{_seg(plan)}",
        body=body,
        audited=(actor, uow, "plan.update", "plan", plan, None),
    )


# --- orchestrator -------------------------------------------------------------------------------

_CATALOG_KINDS = {"models": "model", "providers": "provider", "routes": "route"}


@router.get("/catalog/{kind}")
async def list_catalog(kind: str, _: AdminDep, gateway: GatewayDep) -> Response:
    """`models`, `providers` or `routes` of the orchestrator's catalog."""
    _catalog_kind(kind)
    return await _proxy(gateway.upstreams.orchestrator, "GET", f"/internal/catalog/{kind}")


@router.post("/catalog/{kind}", status_code=201)
async def create_catalog_entry(
    kind: str, actor: AdminDep, gateway: GatewayDep, uow: UowDep, body: dict[str, Any] = JsonBody
) -> Response:
    """Add a model or a route."""
    target = _catalog_kind(kind)
    answer = await _proxy(
        gateway.upstreams.orchestrator,
        "POST",
        f"/internal/catalog/{kind}",
        body=body,
        audited=(actor, uow, f"catalog.{target}.create", target, str(body.get("name", "")), None),
    )
    gateway.catalog.invalidate()
    return answer


@router.patch("/catalog/{kind}/{name}")
async def update_catalog_entry(
    kind: str,
    name: str,
    actor: AdminDep,
    gateway: GatewayDep,
    uow: UowDep,
    body: dict[str, Any] = JsonBody,
) -> Response:
    """Change a model, a provider or a route (by name, or id for routes)."""
    target = _catalog_kind(kind)
    answer = await _proxy(
        gateway.upstreams.orchestrator,
        "PATCH",
        f"/internal/catalog/{kind}/{_seg(name)}",
        body=body,
        audited=(actor, uow, f"catalog.{target}.update", target, name, None),
    )
    gateway.catalog.invalidate()
    return answer


def _catalog_kind(kind: str) -> str:
    if kind not in _CATALOG_KINDS:
        raise ApiError(404, "not_found", "Catalog kinds are models, providers and routes.")
    return _CATALOG_KINDS[kind]


@router.get("/stats")
async def get_stats(_: AdminDep, gateway: GatewayDep) -> Response:
    """Per provider and model: success rate, latency percentiles, cost, attempts."""
    return await _proxy(gateway.upstreams.orchestrator, "GET", "/internal/stats")


@router.get("/providers/health")
async def get_provider_health(_: AdminDep, gateway: GatewayDep) -> Response:
    return await _proxy(gateway.upstreams.orchestrator, "GET", "/internal/providers/health")


@router.get("/plan-limits")
async def get_plan_limits(_: AdminDep, gateway: GatewayDep) -> Response:
    """Concurrent jobs per end user, by plan."""
    return await _proxy(gateway.upstreams.orchestrator, "GET", "/internal/plan-limits")


@router.put("/plan-limits")
async def put_plan_limits(
    actor: AdminDep, gateway: GatewayDep, uow: UowDep, body: dict[str, Any] = JsonBody
) -> Response:
    return await _proxy(
        gateway.upstreams.orchestrator,
        "PUT",
        "/internal/plan-limits",
        body=body,
        audited=(actor, uow, "plan_limits.update", "plan_limits", "all", None),
    )
