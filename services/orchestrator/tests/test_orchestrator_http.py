"""Internal HTTP API through the real app factory, against the test database."""

from collections.abc import Callable
from uuid import uuid4

import httpx
from genhub_contracts import TokensReserved
from genhub_contracts.events import TokensReservedPayload
from genhub_orchestrator.services.runs import enqueue_run
from genhub_platform.uow import UnitOfWork


async def test_models_list_the_seeded_catalog(orch_client: httpx.AsyncClient) -> None:
    response = await orch_client.get("/internal/models")
    assert response.status_code == 200
    models = {m["name"]: m for m in response.json()["models"]}
    assert set(models) >= {"mock", "gpt-image", "flux-schnell", "flux-dev", "sdxl", "gemini-image"}
    assert models["mock"] == {
        "name": "mock",
        "display_name": "Mock (deterministic test images)",
        "family": "mock",
        "enabled": True,
        "capabilities": ["text-to-image", "image-to-image"],
        "max_input_images": 4,
        "aspect_ratios": ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"],
        "sizes": ["512x512", "1024x1024"],
        "max_outputs": 4,
        "available": True,
    }
    # No provider keys in the test environment: real-provider models are listed, not available.
    assert models["gpt-image"]["available"] is False


async def test_providers_list_their_routes(orch_client: httpx.AsyncClient) -> None:
    body = (await orch_client.get("/internal/providers")).json()
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["mock"]["routes"][0]["model"] == "mock"
    assert providers["mock"]["configured"] is True
    assert providers["openai"]["configured"] is False


async def test_run_view_is_tenant_scoped(
    orch_client: httpx.AsyncClient, orch_uow: Callable[[], UnitOfWork]
) -> None:
    event = TokensReserved.new(
        app_id=uuid4(),
        job_id=uuid4(),
        payload=TokensReservedPayload.model_validate(
            {
                "spec": {"user_id": "u", "model": "mock", "input": {"prompt": "x"}},
                "hold_id": str(uuid4()),
                "amount": 10,
            }
        ),
    )
    async with orch_uow() as uow:
        await enqueue_run(uow, event)
        await uow.commit()
    ok = await orch_client.get(f"/internal/apps/{event.app_id}/runs/{event.job_id}")
    assert ok.status_code == 200
    assert ok.json()["status"] == "queued" and ok.json()["provider_attempts"] == []
    other = await orch_client.get(f"/internal/apps/{uuid4()}/runs/{event.job_id}")
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    bad = await orch_client.get(f"/internal/apps/not-a-uuid/runs/{event.job_id}")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
