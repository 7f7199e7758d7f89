"""Runs last: after everything above, billing's ledger must reconcile exactly."""

import httpx
from e2e_support import Endpoints


async def test_ledger_reconciles(endpoints: Endpoints) -> None:
    async with httpx.AsyncClient(base_url=endpoints.billing, timeout=30) as http:
        response = await http.get("/internal/reconcile")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True, report
