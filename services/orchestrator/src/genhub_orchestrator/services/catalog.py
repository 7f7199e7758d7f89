"""Catalog use cases for the internal HTTP API: read views and admin edits, plan limits,
provider health and attempt statistics."""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork
from sqlalchemy.exc import IntegrityError

from genhub_orchestrator.adapters.providers import KINDS, ProviderRegistry, ProviderSpec
from genhub_orchestrator.adapters.providers.mock import FAILURE_KINDS
from genhub_orchestrator.adapters.repositories import CatalogRepository, RunRepository
from genhub_orchestrator.adapters.tables import CatalogModel, Provider, Route
from genhub_orchestrator.domain.resilience import CircuitState, Health
from genhub_orchestrator.domain.scheduling import InvalidPlanLimits, validate_plan_limits

CAPABILITIES = frozenset({"text-to-image", "image-to-image"})


def model_view(m: CatalogModel, available: bool | None = None) -> dict[str, Any]:
    view = {
        "name": m.name,
        "display_name": m.display_name,
        "family": m.family,
        "enabled": m.enabled,
        "capabilities": list(m.capabilities),
        "max_input_images": m.max_input_images,
        "aspect_ratios": list(m.aspect_ratios),
        "sizes": list(m.sizes),
        "max_outputs": m.max_outputs,
    }
    if available is not None:
        view["available"] = available
    return view


def provider_view(p: Provider, registry: ProviderRegistry) -> dict[str, Any]:
    spec = ProviderSpec(p.name, p.kind, p.credentials_env, dict(p.settings))
    return {
        "name": p.name,
        "kind": p.kind,
        "display_name": p.display_name,
        "enabled": p.enabled,
        "credentials_env": p.credentials_env,
        "configured": registry.configured(spec),
        "settings": {k: v for k, v in p.settings.items() if "key" not in k.lower()},
        "max_concurrency": p.max_concurrency,
        "timeout_s": p.timeout_s,
        "health": p.health,
        "circuit": p.circuit,
    }


def route_view(r: Route) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": r.model,
        "provider": r.provider,
        "provider_model_id": r.provider_model_id,
        "priority": r.priority,
        "cost_usd": str(r.cost_usd),
        "enabled": r.enabled,
        "settings": dict(r.settings),
    }


async def list_models(uow: UnitOfWork, registry: ProviderRegistry) -> list[dict[str, Any]]:
    snapshot = await CatalogRepository(uow.session).snapshot()
    usable = {
        name
        for name, info in snapshot.providers.items()
        if info.enabled and registry.configured(info.spec)
    }
    return [
        model_view(
            m,
            available=any(
                r.enabled and r.provider_enabled and r.provider in usable
                for r in snapshot.routes.get(m.name, [])
            ),
        )
        for m in snapshot.models.values()
    ]


async def list_providers(uow: UnitOfWork, registry: ProviderRegistry) -> list[dict[str, Any]]:
    repo = CatalogRepository(uow.session)
    routes = await repo.list_routes()
    return [
        {
            **provider_view(p, registry),
            "routes": [route_view(r) for r in routes if r.provider == p.name],
        }
        for p in await repo.list_providers()
    ]


async def list_routes(uow: UnitOfWork) -> list[dict[str, Any]]:
    return [route_view(r) for r in await CatalogRepository(uow.session).list_routes()]


# --- admin edits ---------------------------------------------------------------------------


def _check_model_fields(fields: Mapping[str, Any]) -> None:
    caps = fields.get("capabilities")
    if caps is not None and (not caps or not set(caps) <= CAPABILITIES):
        raise ApiError(
            422, "invalid_capabilities", f"capabilities must be among {sorted(CAPABILITIES)}"
        )


def _check_provider_fields(fields: Mapping[str, Any]) -> None:
    kind = fields.get("kind")
    if kind is not None and kind not in KINDS:
        raise ApiError(422, "unknown_provider_kind", f"kind must be one of {sorted(KINDS)}")
    failure_kind = (fields.get("settings") or {}).get("failure_kind")
    if failure_kind is not None and failure_kind not in FAILURE_KINDS:
        raise ApiError(
            422, "invalid_settings", f"failure_kind must be one of {list(FAILURE_KINDS)}"
        )


CatalogRow = CatalogModel | Provider | Route


async def _insert(uow: UnitOfWork, row: CatalogRow, conflict: str) -> None:
    repo = CatalogRepository(uow.session)
    repo.add(row)
    try:
        await repo.flush()
    except IntegrityError as exc:
        raise ApiError(409, "conflict", conflict) from exc


async def _patch(
    uow: UnitOfWork, row: CatalogRow | None, fields: Mapping[str, Any], what: str
) -> None:
    if row is None:
        raise ApiError(404, "not_found", f"no {what}")
    for key, value in fields.items():
        setattr(row, key, value)
    repo = CatalogRepository(uow.session)
    repo.add(row)
    await repo.flush()


async def create_model(uow: UnitOfWork, fields: dict[str, Any]) -> dict[str, Any]:
    _check_model_fields(fields)
    model = CatalogModel(**fields)
    await _insert(uow, model, f"model {fields['name']!r} already exists")
    view = model_view(model)
    await uow.commit()
    return view


async def update_model(uow: UnitOfWork, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    _check_model_fields(fields)
    model = await CatalogRepository(uow.session).get_model(name)
    await _patch(uow, model, fields, f"model {name!r}")
    view = model_view(model)  # type: ignore[arg-type]
    await uow.commit()
    return view


async def create_provider(
    uow: UnitOfWork, fields: dict[str, Any], registry: ProviderRegistry
) -> dict[str, Any]:
    _check_provider_fields(fields)
    provider = Provider(**fields)
    await _insert(uow, provider, f"provider {fields['name']!r} already exists")
    view = provider_view(provider, registry)
    await uow.commit()
    return view


async def update_provider(
    uow: UnitOfWork, name: str, fields: dict[str, Any], registry: ProviderRegistry
) -> dict[str, Any]:
    _check_provider_fields(fields)
    provider = await CatalogRepository(uow.session).get_provider(name)
    await _patch(uow, provider, fields, f"provider {name!r}")
    view = provider_view(provider, registry)  # type: ignore[arg-type]
    await uow.commit()
    return view


async def create_route(uow: UnitOfWork, fields: dict[str, Any]) -> dict[str, Any]:
    repo = CatalogRepository(uow.session)
    if await repo.get_model(fields["model"]) is None:
        raise ApiError(404, "not_found", f"no model {fields['model']!r}")
    if await repo.get_provider(fields["provider"]) is None:
        raise ApiError(404, "not_found", f"no provider {fields['provider']!r}")
    route = Route(**fields)
    await _insert(uow, route, "this model already has a route to this provider model id")
    view = route_view(route)
    await uow.commit()
    return view


async def update_route(uow: UnitOfWork, route_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    route = await CatalogRepository(uow.session).get_route(route_id)
    await _patch(uow, route, fields, f"route {route_id}")
    view = route_view(route)  # type: ignore[arg-type]
    await uow.commit()
    return view


# --- plan limits, health, stats ------------------------------------------------------------


async def get_plan_limits(uow: UnitOfWork) -> dict[str, int]:
    return await CatalogRepository(uow.session).plan_limits()


async def put_plan_limits(uow: UnitOfWork, limits: dict[str, Any]) -> dict[str, int]:
    try:
        clean = validate_plan_limits(limits)
    except InvalidPlanLimits as exc:
        raise ApiError(422, "invalid_plan_limits", str(exc)) from exc
    repo = CatalogRepository(uow.session)
    await repo.set_plan_limits(clean)
    await uow.commit()
    return await repo.plan_limits()


async def provider_health(
    uow: UnitOfWork, local: Callable[[], dict[str, tuple[Health, CircuitState]]]
) -> list[dict[str, Any]]:
    """Stored health per provider, overridden by this process's breakers where it has one."""
    seen = local()
    out = []
    for p in await CatalogRepository(uow.session).list_providers():
        health, circuit = seen.get(p.name, (p.health, p.circuit))
        out.append(
            {"name": p.name, "enabled": p.enabled, "health": str(health), "circuit": str(circuit)}
        )
    return out


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


async def stats(uow: UnitOfWork, since_hours: float) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(hours=since_hours)
    rows = await CatalogRepository(uow.session).stats(since)
    items = [
        {
            "provider": r["provider"],
            "model": r["model"],
            "attempts": int(r["attempts"]),
            "succeeded": int(r["succeeded"]),
            "success_rate": round(int(r["succeeded"]) / int(r["attempts"]), 4)
            if r["attempts"]
            else None,
            "p50_latency_ms": _ms(r["p50"]),
            "p95_latency_ms": _ms(r["p95"]),
            "cost_usd": str(Decimal(r["cost"])),
        }
        for r in rows
    ]
    return {
        "since": since.isoformat(),
        "stats": [i for i in items if i["model"] is not None],
        "providers": [
            {k: v for k, v in i.items() if k != "model"} for i in items if i["model"] is None
        ],
    }


async def get_run(uow: UnitOfWork, app_id: UUID, job_id: UUID) -> dict[str, Any]:
    repo = RunRepository(uow.session)
    run = await repo.get(job_id, app_id)
    if run is None:
        raise ApiError(404, "not_found", "This app has no such job in the orchestrator.")
    return {
        "job_id": str(run.job_id),
        "app_id": str(run.app_id),
        "user_id": run.user_id,
        "model": run.model,
        "status": run.status,
        "priority": run.priority,
        "plan": run.plan,
        "provider": run.provider,
        "attempts": run.attempts,
        "claims": run.claims,
        "worker": str(run.lease_owner) if run.lease_owner else None,
        "cancel_requested": run.cancel_requested,
        "prompt": run.spec["input"]["prompt"],
        "enhanced_prompt": run.enhanced_prompt,
        "cache_hit": run.cache_hit,
        "cost_usd": str(run.cost_usd),
        "error": {"code": run.error_code, "message": run.error_message} if run.error_code else None,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "provider_attempts": [
            {
                "provider": a.provider,
                "provider_model_id": a.provider_model_id,
                "provider_task_id": a.provider_task_id,
                "claim": a.claim,
                "latency_ms": a.latency_ms,
                "cost_usd": str(a.cost_usd),
                "outcome": a.outcome,
                "error": {"code": a.error_code, "message": a.error_message}
                if a.error_code
                else None,
                "created_at": a.created_at.isoformat(),
            }
            for a in await repo.attempts_of(job_id)
        ],
    }
