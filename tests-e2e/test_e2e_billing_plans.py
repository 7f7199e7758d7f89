"""Plan allocations end to end: an app's users get their plan's monthly tokens once per UTC
month (on by default), an app that turned them off gets none.

The plan scheduler runs every BILLING_PLAN_INTERVAL_S; the test runs its work now through
billing's internal `POST /internal/plans/allocate` (what an operator would call), so it does not
wait for the schedule. Either way the allocation happens once per user and month.
"""

import secrets

import httpx
from e2e_support import Endpoints, Tenant
from genhub_client import AsyncGenhub, AsyncGenhubAdmin

BASIC_MONTHLY = 500


async def allocate_everything(endpoints: Endpoints) -> None:
    async with httpx.AsyncClient(base_url=endpoints.billing, timeout=30) as billing:
        while True:
            r = await billing.post("/internal/plans/allocate", params={"limit": 1000})
            r.raise_for_status()
            if not r.json()["more"]:
                return


async def test_plan_tokens_are_allocated_once_and_only_where_on(
    admin: AsyncGenhubAdmin, endpoints: Endpoints, tenant: Tenant, user_id: str
) -> None:
    slug = f"e2e-plan-{secrets.token_hex(4)}"
    created = await admin.create_app(slug, slug, plan="basic")
    assert (await admin.billing_settings(created.app.id))["monthly_allocations"] is True
    async with AsyncGenhub(endpoints.gateway, created.api_key) as client:
        await client.grant_tokens(user_id, 7, "e2e grant")  # billing now knows the user
        await tenant.client.grant_tokens(user_id, 7, "e2e grant")  # same id, app opted out

        await allocate_everything(endpoints)
        await allocate_everything(endpoints)  # a second run (or replica) adds nothing

        user = await client.get_user(user_id)
        assert (user.balance, user.reserved) == (7 + BASIC_MONTHLY, 0)
        ledger = await client.get_ledger(user_id)
        kinds = [entry["kind"] for entry in ledger["entries"]]
        assert kinds.count("plan_allocation") == 1, kinds
    assert (await tenant.client.get_user(user_id)).balance == 7
