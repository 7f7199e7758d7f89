"""Read use cases of the model catalog and the run log (internal HTTP)."""

from typing import Any
from uuid import UUID

from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_orchestrator.adapters.repositories import CatalogRepository, RunRepository


async def list_models(uow: UnitOfWork) -> list[dict[str, Any]]:
    models = await CatalogRepository(uow.session).list_models()
    return [
        {
            "name": m.name,
            "display_name": m.display_name,
            "enabled": m.enabled,
            "capabilities": list(m.capabilities),
            "max_outputs": m.max_outputs,
        }
        for m in models
    ]


async def list_providers(uow: UnitOfWork) -> list[dict[str, Any]]:
    repo = CatalogRepository(uow.session)
    routes = await repo.list_routes()
    return [
        {
            "name": p.name,
            "enabled": p.enabled,
            "routes": [
                {
                    "model": r.model,
                    "provider_model_id": r.provider_model_id,
                    "priority": r.priority,
                    "cost_usd": str(r.cost_usd),
                    "enabled": r.enabled,
                }
                for r in routes
                if r.provider == p.name
            ],
        }
        for p in await repo.list_providers()
    ]


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
        "provider": run.provider,
        "attempts": run.attempts,
        "claims": run.claims,
        "cancel_requested": run.cancel_requested,
        "error": {"code": run.error_code, "message": run.error_message} if run.error_code else None,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "provider_attempts": [
            {
                "provider": a.provider,
                "provider_model_id": a.provider_model_id,
                "claim": a.claim,
                "latency_ms": a.latency_ms,
                "outcome": a.outcome,
                "error": {"code": a.error_code, "message": a.error_message}
                if a.error_code
                else None,
                "created_at": a.created_at.isoformat(),
            }
            for a in await repo.attempts_of(job_id)
        ],
    }
