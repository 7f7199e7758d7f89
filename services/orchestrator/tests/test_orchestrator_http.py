"""Internal HTTP API through the real app factory, against the test database."""

from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import httpx
import pytest
from genhub_contracts import TokensReserved
from genhub_contracts.events import TokensReservedPayload
from genhub_orchestrator.config import Settings
from genhub_orchestrator.main import create_app
from genhub_orchestrator.services.runs import enqueue_run
from genhub_platform.uow import UnitOfWork


@pytest.fixture
async def orch_client(
    orch_database: str, orch_uow: Callable[[], UnitOfWork]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(ORCHESTRATOR_DATABASE_URL=orch_database, LOG_FORMAT="text"))
    transport = httpx.ASGITransport(app=app)  # no lifespan: no Kafka, no background loops
    async with httpx.AsyncClient(transport=transport, base_url="http://orchestrator") as client:
        yield client
    await app.state.runtime.engine.dispose()


async def test_models_lists_the_seeded_mock(orch_client: httpx.AsyncClient) -> None:
    response = await orch_client.get("/internal/models")
    assert response.status_code == 200
    assert response.json() == {
        "models": [
            {
                "name": "mock",
                "display_name": "Mock (deterministic test images)",
                "enabled": True,
                "capabilities": ["text-to-image"],
                "max_outputs": 4,
            }
        ]
    }


async def test_providers_list_their_routes(orch_client: httpx.AsyncClient) -> None:
    body = (await orch_client.get("/internal/providers")).json()
    assert body["providers"][0]["name"] == "mock"
    assert body["providers"][0]["routes"][0]["model"] == "mock"


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
