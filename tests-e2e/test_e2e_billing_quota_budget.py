"""Billing end to end through the public gateway: the free daily quota is used before paid
tokens (then `quota_exceeded`), and an app over its hard budget cap gets `budget_exceeded`.

App settings are set on billing's internal API (what the gateway's admin API proxies to).
"""

import httpx
from e2e_support import Endpoints, Tenant, eventually, settled_job

MOCK_PRICE = 10


async def put_settings(endpoints: Endpoints, app_id: str, **values: object) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=endpoints.billing, timeout=10) as billing:
        r = await billing.put(f"/internal/apps/{app_id}/settings", json=values)
        r.raise_for_status()
        body: dict[str, object] = r.json()
        return body


async def test_free_quota_is_spent_before_tokens_then_quota_exceeded(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await put_settings(endpoints, tenant.app_id, free_daily_quota=2)
    await tenant.client.grant_tokens(user_id, MOCK_PRICE, "e2e grant")

    statuses = []
    for prompt in ("free one", "free two", "paid"):
        accepted = await tenant.client.generate(user_id, "mock", prompt)
        if prompt == "paid":
            job = await settled_job(tenant.client, accepted.job_id)
        else:  # a free job holds no tokens: nothing to settle, terminal is the end
            job = await eventually(
                lambda a=accepted: tenant.client.get_job(a.job_id),  # type: ignore[misc]
                lambda j: j.is_terminal,
                timeout=60,
            )
        statuses.append(job.status)
        assert job.tokens is not None
        expected = MOCK_PRICE if prompt == "paid" else 0
        assert (job.tokens.reserved, job.tokens.charged) == (expected, expected), job
    assert statuses == ["succeeded"] * 3

    refused = await settled_job(
        tenant.client, (await tenant.client.generate(user_id, "mock", "one more")).job_id
    )
    assert refused.status == "rejected"
    assert refused.error is not None and refused.error.code == "quota_exceeded"

    balance = await eventually(lambda: tenant.client.get_user(user_id), lambda b: b.reserved == 0)
    assert (balance.balance, balance.available) == (0, 0)
    async with httpx.AsyncClient(base_url=endpoints.billing, timeout=10) as billing:
        raw = (await billing.get(f"/internal/apps/{tenant.app_id}/users/{user_id}/balance")).json()
    assert (raw["free_quota_left"], raw["free_quota_per_day"]) == (0, 2)


async def test_an_app_over_its_hard_budget_cap_is_refused_new_jobs(
    tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    await tenant.client.grant_tokens(user_id, 100, "e2e grant")
    settings = await put_settings(endpoints, tenant.app_id, monthly_budget_usd=0)
    assert settings["budget_levels_reached"] == ["soft", "hard"]

    job = await settled_job(
        tenant.client, (await tenant.client.generate(user_id, "mock", "over budget")).job_id
    )
    assert job.status == "rejected"
    assert job.error is not None and job.error.code == "budget_exceeded"
    balance = await tenant.client.get_user(user_id)
    assert (balance.balance, balance.reserved) == (100, 0)

    await put_settings(endpoints, tenant.app_id, monthly_budget_usd=1000)
    job = await settled_job(
        tenant.client, (await tenant.client.generate(user_id, "mock", "within budget")).job_id
    )
    assert job.status == "succeeded", job
