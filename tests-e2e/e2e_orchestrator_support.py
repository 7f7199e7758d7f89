"""Orchestrator e2e helpers: seed test-only models, mock providers and routes through the
catalog admin API (idempotently, so reruns converge), price them in billing, and read the
orchestrator's run view. Every name starts with `e2e-orch-`: the shared catalog's real
models are never touched, so parallel suites are not disturbed."""

import asyncio
from typing import Any

import httpx
from e2e_support import Endpoints, Tenant
from genhub_client import GenhubError, Job

TOKENS = 10  # price of every e2e-orch model, per output
NEVER_OPEN = {"breaker_failure_threshold": 100_000, "breaker_failure_ratio": 2.0}


async def ensure_provider(client: httpx.AsyncClient, name: str, **fields: Any) -> None:
    body = {"kind": "mock", **fields}
    created = await client.post("/internal/catalog/providers", json={"name": name, **body})
    if created.status_code == 409:
        body.pop("kind")
        patched = await client.patch(f"/internal/catalog/providers/{name}", json=body)
        patched.raise_for_status()
    else:
        created.raise_for_status()


async def ensure_model(
    ep: Endpoints,
    model: str,
    routes: list[tuple[str, int]],
    *,
    providers: dict[str, dict[str, Any]],
) -> None:
    """The model, its providers (mock kind, given settings) and routes (provider, priority);
    other routes of the model are disabled. Billing prices it at TOKENS per output."""
    async with httpx.AsyncClient(base_url=ep.orchestrator, timeout=10) as client:
        created = await client.post(
            "/internal/catalog/models",
            json={"name": model, "display_name": model, "capabilities": ["text-to-image"]},
        )
        if created.status_code == 409:
            (
                await client.patch(f"/internal/catalog/models/{model}", json={"enabled": True})
            ).raise_for_status()
        else:
            created.raise_for_status()
        for name, fields in providers.items():
            await ensure_provider(client, name, **fields)
        existing = {
            r["provider"]: r
            for r in (await client.get("/internal/catalog/routes")).json()["routes"]
            if r["model"] == model
        }
        wanted = dict(routes)
        for provider, route in existing.items():
            if provider not in wanted:
                await client.patch(
                    f"/internal/catalog/routes/{route['id']}", json={"enabled": False}
                )
        for provider, priority in wanted.items():
            if provider in existing:
                response = await client.patch(
                    f"/internal/catalog/routes/{existing[provider]['id']}",
                    json={"priority": priority, "enabled": True},
                )
            else:
                response = await client.post(
                    "/internal/catalog/routes",
                    json={
                        "model": model,
                        "provider": provider,
                        "provider_model_id": f"{provider}-v1",
                        "priority": priority,
                        "cost_usd": "0.001",
                    },
                )
            response.raise_for_status()
    async with httpx.AsyncClient(base_url=ep.billing, timeout=10) as client:
        (
            await client.put(f"/internal/pricing/{model}", json={"base_tokens": TOKENS})
        ).raise_for_status()


async def submit(tenant: Tenant, user_id: str, model: str, prompt: str, **kw: Any) -> Job:
    """Generate; a model created moments ago may be unknown to the gateway's cached catalog
    (30 s) until its next refresh, so `unknown_model` is retried for a while."""
    deadline = asyncio.get_running_loop().time() + 40
    while True:
        try:
            return await tenant.client.generate(user_id, model, prompt, **kw)
        except GenhubError as exc:
            if exc.code != "unknown_model" or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1.0)


async def run_view(ep: Endpoints, tenant: Tenant, job_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=ep.orchestrator, timeout=10) as client:
        response = await client.get(f"/internal/apps/{tenant.app_id}/runs/{job_id}")
        if response.status_code == 404:  # tokens.reserved not consumed yet
            return {"status": "absent"}
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


async def health_of(ep: Endpoints, provider: str) -> str:
    async with httpx.AsyncClient(base_url=ep.orchestrator, timeout=10) as client:
        providers = (await client.get("/internal/providers/health")).json()["providers"]
    return str(next(p["health"] for p in providers if p["name"] == provider))
