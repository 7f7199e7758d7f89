"""A tenant never sees another tenant's jobs or users."""

import httpx
from e2e_support import Endpoints, Tenant


async def test_other_app_cannot_read_a_job(
    tenant: Tenant, other_tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 20, "e2e grant")
    accepted = await tenant.client.generate(user_id, "mock", "private picture")

    async with httpx.AsyncClient(base_url=endpoints.gateway, timeout=10) as http:
        response = await http.get(
            f"/v1/jobs/{accepted.job_id}", headers={"X-API-Key": other_tenant.api_key}
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"

    # The same external user id in another app is another user, unknown there until named.
    for path in (f"/v1/users/{user_id}", f"/v1/users/{user_id}/ledger"):
        async with httpx.AsyncClient(base_url=endpoints.gateway, timeout=10) as http:
            response = await http.get(path, headers={"X-API-Key": other_tenant.api_key})
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "user_not_found"
    theirs = await other_tenant.client.register_user(user_id)
    assert (theirs.balance, theirs.available) == (0, 0)
    ours = await tenant.client.get_user(user_id)
    assert ours.balance == 20
