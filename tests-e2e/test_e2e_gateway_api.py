"""The gateway's retry contract end to end: Idempotency-Key replay and reuse, `Prefer: wait`."""

import secrets

import httpx
import pytest
from e2e_support import Endpoints, Tenant, settled_job
from genhub_client import GenhubError

MOCK_PRICE = 10  # tokens per output for the seeded `mock` model


def _headers(tenant: Tenant, user_id: str, **extra: str) -> dict[str, str]:
    return {"X-API-Key": tenant.api_key, "X-User-ID": user_id, **extra}


async def test_idempotent_retry_returns_the_same_job_and_charges_once(
    tenant: Tenant, user_id: str
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e grant")
    key = f"order-{secrets.token_hex(4)}"
    first = await tenant.client.generate(user_id, "mock", "a lighthouse", idempotency_key=key)
    again = await tenant.client.generate(user_id, "mock", "a lighthouse", idempotency_key=key)
    assert again.job_id == first.job_id

    job = await settled_job(tenant.client, first.job_id)
    assert job.status == "succeeded", job
    assert job.tokens is not None and job.tokens.charged == MOCK_PRICE

    # A retry after the job ended still answers with the first job and starts nothing new.
    late = await tenant.client.generate(user_id, "mock", "a lighthouse", idempotency_key=key)
    assert late.job_id == first.job_id
    balance = await tenant.client.get_user(user_id)
    assert (balance.balance, balance.reserved, balance.available) == (90, 0, 90)


async def test_replay_is_marked_and_another_body_is_422(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e grant")
    body = {"model": "mock", "input": {"prompt": "a kite"}}
    headers = _headers(tenant, user_id, **{"Idempotency-Key": f"k-{secrets.token_hex(4)}"})
    async with httpx.AsyncClient(base_url=endpoints.gateway, timeout=30) as http:
        first = await http.post("/v1/generate", headers=headers, json=body)
        replay = await http.post("/v1/generate", headers=headers, json=body)
        assert first.status_code == replay.status_code == 202
        assert replay.json() == first.json()
        assert replay.headers["idempotent-replayed"] == "true"

        other = await http.post(
            "/v1/generate", headers=headers, json={**body, "input": {"prompt": "a boat"}}
        )
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"
    job = await settled_job(tenant.client, first.json()["job_id"])
    assert job.status == "succeeded"
    assert (await tenant.client.get_user(user_id)).balance == 100 - MOCK_PRICE


async def test_prefer_wait_answers_with_the_finished_job(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e grant")
    body = {"model": "mock", "input": {"prompt": "a red fox"}}
    async with httpx.AsyncClient(base_url=endpoints.gateway, timeout=60) as http:
        response = await http.post(
            "/v1/generate", headers=_headers(tenant, user_id, Prefer="wait=30"), json=body
        )
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=30"
    job = response.json()
    assert job["status"] == "succeeded"
    assert len(job["outputs"]) == 1 and job["outputs"][0]["url"]

    # The client library does the same with `wait`.
    done = await tenant.client.generate(user_id, "mock", "a grey wolf", wait=30)
    assert done.status == "succeeded" and len(done.outputs) == 1
    png = await tenant.client.download(done.outputs[0].url or "")
    assert png.startswith(b"\x89PNG")


async def test_prefer_wait_without_enough_tokens_is_402(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 3, "too little")
    body = {"model": "mock", "input": {"prompt": "a red fox"}}
    async with httpx.AsyncClient(base_url=endpoints.gateway, timeout=60) as http:
        response = await http.post(
            "/v1/generate", headers=_headers(tenant, user_id, Prefer="wait=30"), json=body
        )
        assert response.status_code == 402, response.text
        problem = response.json()
        assert problem["error"]["code"] == "insufficient_tokens"
        assert (problem["balance"], problem["required"]) == (3, MOCK_PRICE)

        bad = await http.post(
            "/v1/generate", headers=_headers(tenant, user_id, Prefer="wait=61"), json=body
        )
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_prefer")

    with pytest.raises(GenhubError) as exc:
        await tenant.client.generate(user_id, "mock", "a red fox", wait=30)
    assert (exc.value.status, exc.value.code) == (402, "insufficient_tokens")
    assert (exc.value.body["balance"], exc.value.body["required"]) == (3, MOCK_PRICE)
    assert (await tenant.client.get_user(user_id)).balance == 3
