"""Catalog admin, plan limits, provider health and stats through the real app (test DB)."""

from collections.abc import Callable
from decimal import Decimal

import httpx
from genhub_contracts import ErrorInfo
from genhub_orchestrator.adapters.repositories import AttemptRecord, RunRepository
from genhub_orchestrator.services.runs import enqueue_run
from genhub_platform.uow import UnitOfWork
from test_orchestrator_worker_db import reserved


async def test_model_create_patch_and_conflict(orch_client: httpx.AsyncClient) -> None:
    body = {
        "name": "test-m1",
        "display_name": "Test model",
        "capabilities": ["text-to-image"],
        "aspect_ratios": ["1:1"],
        "sizes": ["512x512"],
        "max_outputs": 2,
    }
    created = await orch_client.post("/internal/catalog/models", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["max_outputs"] == 2 and created.json()["enabled"] is True
    again = await orch_client.post("/internal/catalog/models", json=body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    patched = await orch_client.patch(
        "/internal/catalog/models/test-m1", json={"enabled": False, "max_input_images": 2}
    )
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False and patched.json()["max_input_images"] == 2
    listed = (await orch_client.get("/internal/catalog/models")).json()["models"]
    assert any(m["name"] == "test-m1" and m["enabled"] is False for m in listed)
    missing = await orch_client.patch("/internal/catalog/models/test-nope", json={"enabled": True})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_bad_catalog_input_is_422(orch_client: httpx.AsyncClient) -> None:
    bad = [
        ("/internal/catalog/models", {"name": "Bad Name", "display_name": "x"}),
        (
            "/internal/catalog/models",
            {"name": "test-x", "display_name": "x", "capabilities": ["video"]},
        ),
        ("/internal/catalog/providers", {"name": "test-p", "kind": "nope"}),
        (
            "/internal/catalog/providers",
            {"name": "test-p", "kind": "mock", "settings": {"failure_kind": "weird"}},
        ),
        (
            "/internal/catalog/routes",
            {"model": "mock", "provider": "mock", "provider_model_id": "x", "cost_usd": "-1"},
        ),
    ]
    for path, body in bad:
        response = await orch_client.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["error"]["code"]


async def test_provider_and_route_admin(orch_client: httpx.AsyncClient) -> None:
    provider = await orch_client.post(
        "/internal/catalog/providers",
        json={
            "name": "test-flaky",
            "kind": "mock",
            "settings": {"failure_rate": 1.0},
            "max_concurrency": 2,
        },
    )
    assert provider.status_code == 201, provider.text
    assert provider.json()["configured"] is True and provider.json()["health"] == "healthy"
    route = await orch_client.post(
        "/internal/catalog/routes",
        json={
            "model": "mock",
            "provider": "test-flaky",
            "provider_model_id": "flaky-v1",
            "priority": 1,
            "cost_usd": "0.010000",
        },
    )
    assert route.status_code == 201, route.text
    assert route.json()["cost_usd"] == "0.010000" and route.json()["priority"] == 1
    dup = await orch_client.post(
        "/internal/catalog/routes",
        json={"model": "mock", "provider": "test-flaky", "provider_model_id": "flaky-v1"},
    )
    assert dup.status_code == 409
    unknown = await orch_client.post(
        "/internal/catalog/routes",
        json={"model": "test-none", "provider": "mock", "provider_model_id": "x"},
    )
    assert unknown.status_code == 404
    patched = await orch_client.patch(
        f"/internal/catalog/routes/{route.json()['id']}", json={"enabled": False}
    )
    assert patched.json()["enabled"] is False
    providers = (await orch_client.get("/internal/catalog/providers")).json()["providers"]
    flaky = next(p for p in providers if p["name"] == "test-flaky")
    assert flaky["routes"][0]["provider_model_id"] == "flaky-v1"
    off = await orch_client.patch("/internal/catalog/providers/test-flaky", json={"enabled": False})
    assert off.json()["enabled"] is False
    routes = (await orch_client.get("/internal/catalog/routes")).json()["routes"]
    assert any(r["provider"] == "test-flaky" for r in routes)


async def test_plan_limits_get_put(orch_client: httpx.AsyncClient) -> None:
    assert (await orch_client.get("/internal/plan-limits")).json() == {
        "free": 1,
        "basic": 1,
        "pro": 3,
        "enterprise": 10,
    }
    put = await orch_client.put("/internal/plan-limits", json={"pro": 5})
    assert put.status_code == 200 and put.json()["pro"] == 5 and put.json()["basic"] == 1
    bad = await orch_client.put("/internal/plan-limits", json={"gold": 5})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_plan_limits"


async def test_providers_health(orch_client: httpx.AsyncClient) -> None:
    body = (await orch_client.get("/internal/providers/health")).json()
    mock = next(p for p in body["providers"] if p["name"] == "mock")
    assert mock == {"name": "mock", "enabled": True, "health": "healthy", "circuit": "closed"}


async def test_stats_per_provider_and_model(
    orch_client: httpx.AsyncClient, orch_uow: Callable[[], UnitOfWork]
) -> None:
    event = reserved()
    async with orch_uow() as uow:
        await enqueue_run(uow, event)
        assert event.job_id is not None
        records = [
            AttemptRecord(
                "mock", "mock-v1", 100, "succeeded", model="mock", cost_usd=Decimal("0.01")
            ),
            AttemptRecord(
                "mock",
                "mock-v1",
                300,
                "failed",
                ErrorInfo(code="provider_error", message="x"),
                model="mock",
            ),
        ]
        await RunRepository(uow.session).add_attempts(event.job_id, event.app_id, 1, records)
        await uow.commit()
    body = (await orch_client.get("/internal/stats")).json()
    (row,) = [s for s in body["stats"] if s["provider"] == "mock" and s["model"] == "mock"]
    assert row["attempts"] == 2 and row["success_rate"] == 0.5 and row["cost_usd"] == "0.010000"
    assert row["p50_latency_ms"] == 200.0 and row["p95_latency_ms"] == 290.0
    (total,) = [p for p in body["providers"] if p["provider"] == "mock"]
    assert total["attempts"] == 2
    assert (await orch_client.get("/internal/stats?since_hours=0")).status_code == 422
