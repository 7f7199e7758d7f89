"""Bad input gets a 4xx with a stable error code, never a 500."""

import httpx
import pytest
from e2e_support import Endpoints, Tenant


async def _post(
    endpoints: Endpoints, headers: dict[str, str], body: object | str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=endpoints.gateway, timeout=10) as http:
        if isinstance(body, str):
            headers = {**headers, "Content-Type": "application/json"}
            return await http.post("/v1/generate", headers=headers, content=body)
        return await http.post("/v1/generate", headers=headers, json=body)


VALID = {"model": "mock", "input": {"prompt": "a boat"}}


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, VALID, 401, "missing_api_key"),
        ({"X-API-Key": "gh_live_not-a-real-key"}, VALID, 401, "invalid_api_key"),
    ],
)
async def test_authentication_errors(
    endpoints: Endpoints, headers: dict[str, str], body: object, status: int, code: str
) -> None:
    response = await _post(endpoints, {"X-User-ID": "u1", **headers}, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "no-such-model", "input": {"prompt": "x"}}, "unknown_model"),
        ({"model": "mock", "input": {"prompt": ""}}, "validation_error"),
        ({"model": "mock", "input": {"prompt": "x", "num_outputs": 9}}, "validation_error"),
        ({"model": "mock"}, "validation_error"),
        ("{not json", "validation_error"),
        ([1, 2, 3], "validation_error"),
    ],
)
async def test_invalid_requests(
    tenant: Tenant, endpoints: Endpoints, body: object, code: str
) -> None:
    response = await _post(endpoints, {"X-API-Key": tenant.api_key, "X-User-ID": "u1"}, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


async def test_missing_user_id(tenant: Tenant, endpoints: Endpoints) -> None:
    response = await _post(endpoints, {"X-API-Key": tenant.api_key}, VALID)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_user_id"
