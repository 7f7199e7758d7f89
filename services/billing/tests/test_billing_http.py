"""The internal HTTP API (docs/internal-apis.md) against the test database."""

import asyncio
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from genhub_billing.handlers.http import router
from genhub_platform.errors import install_error_handlers
from genhub_platform.uow import UnitOfWork


@pytest.fixture
async def client(make_uow: Callable[[], UnitOfWork]) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.runtime = SimpleNamespace(uow=make_uow)  # all the deps need from a runtime
    install_error_handlers(app)
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://billing") as c:
        yield c


def user_url(app_id: UUID, user: str = "u1") -> str:
    return f"/internal/apps/{app_id}/users/{user}"


async def test_unknown_user_reads_as_zero(client: httpx.AsyncClient, app_id: UUID) -> None:
    r = await client.get(f"{user_url(app_id, 'ghost')}/balance")
    assert r.status_code == 200
    assert r.json() == {
        "app_id": str(app_id), "user_id": "ghost", "balance": 0, "reserved": 0, "available": 0,
        "free_quota_left": 0, "free_quota_per_day": 0, "disabled": False,
    }  # fmt: skip


async def test_grant_then_balance(client: httpx.AsyncClient, app_id: UUID) -> None:
    r = await client.post(f"{user_url(app_id)}/grants", json={"amount": 100, "reason": "promo"})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"transfer_id", "balance", "reserved", "available"}
    assert (body["balance"], body["reserved"], body["available"]) == (100, 0, 100)
    r = await client.get(f"{user_url(app_id)}/balance")
    assert r.json()["balance"] == 100


async def test_grant_replay_returns_the_original(client: httpx.AsyncClient, app_id: UUID) -> None:
    body = {"amount": 25, "reason": "signup", "idempotency_key": "k-1"}
    first = await client.post(f"{user_url(app_id)}/grants", json=body)
    await client.post(f"{user_url(app_id)}/grants", json={"amount": 5, "reason": "other"})
    again = await client.post(f"{user_url(app_id)}/grants", json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert (first.headers["idempotent-replayed"], again.headers["idempotent-replayed"]) == (
        "false", "true"
    )  # fmt: skip
    assert (await client.get(f"{user_url(app_id)}/balance")).json()["balance"] == 30


async def test_same_key_different_amount_conflicts(client: httpx.AsyncClient, app_id: UUID) -> None:
    url = f"{user_url(app_id)}/grants"
    await client.post(url, json={"amount": 25, "reason": "x", "idempotency_key": "k"})
    r = await client.post(url, json={"amount": 26, "reason": "x", "idempotency_key": "k"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "idempotency_conflict"


async def test_idempotency_keys_are_per_user(client: httpx.AsyncClient, app_id: UUID) -> None:
    for user in ("a", "b"):
        r = await client.post(
            f"{user_url(app_id, user)}/grants",
            json={"amount": 7, "reason": "x", "idempotency_key": "same"},
        )
        assert r.status_code == 201 and r.json()["balance"] == 7


async def test_concurrent_grants_with_one_key_apply_once(
    client: httpx.AsyncClient, app_id: UUID
) -> None:
    body = {"amount": 10, "reason": "race", "idempotency_key": "race-1"}
    results = await asyncio.gather(
        *(client.post(f"{user_url(app_id)}/grants", json=body) for _ in range(8))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["transfer_id"] for r in results}) == 1
    assert (await client.get(f"{user_url(app_id)}/balance")).json()["balance"] == 10


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "reason": "x"},
        {"amount": -5, "reason": "x"},
        {"amount": 10**9 + 1, "reason": "x"},
        {"amount": "10", "reason": "x"},
        {"amount": 10.5, "reason": "x"},
        {"amount": True, "reason": "x"},
        {"amount": 10},
        {"amount": 10, "reason": ""},
        {"amount": 10, "reason": "x", "idempotency_key": ""},
        {"amount": 10, "reason": "x", "surprise": 1},
    ],
)
async def test_bad_grants_are_422(
    client: httpx.AsyncClient, app_id: UUID, body: dict[str, Any]
) -> None:
    r = await client.post(f"{user_url(app_id)}/grants", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


async def test_max_amount_is_accepted(client: httpx.AsyncClient, app_id: UUID) -> None:
    r = await client.post(f"{user_url(app_id)}/grants", json={"amount": 10**9, "reason": "x"})
    assert r.status_code == 201


async def test_bad_app_id_is_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/internal/apps/not-a-uuid/users/u1/balance")
    assert r.status_code == 422


async def test_ledger_is_newest_first_with_cursor(client: httpx.AsyncClient, app_id: UUID) -> None:
    for amount in range(1, 6):
        await client.post(f"{user_url(app_id)}/grants", json={"amount": amount, "reason": "g"})
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = await client.get(f"{user_url(app_id)}/ledger", params=params)
        assert r.status_code == 200
        body = r.json()
        seen += [e["amount"] for e in body["entries"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [5, 4, 3, 2, 1]
    assert pages == 3
    r = await client.get(f"{user_url(app_id)}/ledger", params={"limit": 1})
    [entry] = r.json()["entries"]
    assert entry["kind"] == "grant" and entry["direction"] == "credit"
    assert (entry["balance_change"], entry["balance_after"], entry["available_after"]) == (
        5,
        15,
        15,
    )


async def test_ledger_of_another_app_is_empty(client: httpx.AsyncClient, app_id: UUID) -> None:
    await client.post(f"{user_url(app_id)}/grants", json={"amount": 3, "reason": "g"})
    other = UUID("22222222-2222-2222-2222-222222222222")
    r = await client.get(f"{user_url(other)}/ledger")
    assert r.json() == {"entries": [], "next_cursor": None}


@pytest.mark.parametrize("params", [{"cursor": "%%%"}, {"cursor": "c2VxOmFiYw"}, {"limit": 0},
                                    {"limit": 201}])  # fmt: skip
async def test_bad_ledger_params_are_422(
    client: httpx.AsyncClient, app_id: UUID, params: dict[str, Any]
) -> None:
    r = await client.get(f"{user_url(app_id)}/ledger", params=params)
    assert r.status_code == 422
    assert r.json()["error"]["code"] in {"invalid_cursor", "validation_error"}


async def test_prices(client: httpx.AsyncClient, sql: Any, app_id: UUID) -> None:
    r = await client.get("/internal/prices")
    assert r.json() == {"prices": [{
        "model": "mock", "tokens_per_output": 10, "base_tokens": 10, "hd_multiplier": 1.5,
        "hd_tokens_per_output": 15, "overridden": False,
    }]}  # fmt: skip
    await sql("INSERT INTO prices (app_id, model, tokens_per_output) VALUES (:a, 'mock', 4)",
              a=app_id)  # fmt: skip
    r = await client.get("/internal/prices", params={"app_id": str(app_id)})
    [price] = r.json()["prices"]
    assert (price["tokens_per_output"], price["hd_tokens_per_output"], price["overridden"]) == (
        4, 6, True
    )  # fmt: skip
    r = await client.get("/internal/prices")
    assert r.json()["prices"][0]["tokens_per_output"] == 10


async def test_reconcile_endpoint(client: httpx.AsyncClient, sql: Any, app_id: UUID) -> None:
    await client.post(f"{user_url(app_id)}/grants", json={"amount": 3, "reason": "g"})
    body = (await client.get("/internal/reconcile")).json()
    assert body["ok"] is True and body["accounts_checked"] == 2
    await sql("UPDATE accounts SET balance = 2 WHERE user_id = 'u1'")
    body = (await client.get("/internal/reconcile")).json()
    assert body["ok"] is False
    assert body["problems"][0]["message"].startswith("balance 2 != ledger sum 3")


# --- settings, pricing, plans, batch grants, adjustments ----------------------------------------


async def test_settings_round_trip_and_balance_shows_the_free_quota(
    client: httpx.AsyncClient, app_id: UUID
) -> None:
    r = await client.get(f"/internal/apps/{app_id}/settings")
    assert r.status_code == 200
    defaults = r.json()
    assert (defaults["plan"], defaults["free_daily_quota"], defaults["monthly_budget_usd"]) == (
        "free", 0, None
    )  # fmt: skip
    assert defaults["monthly_allocations"] is True  # plans are allocated unless the app opts out
    body = {"plan": "pro", "free_daily_quota": 3, "monthly_budget_usd": 12.5, "soft_cap_ratio": 0.9,
            "monthly_allocations": False}  # fmt: skip
    r = await client.put(f"/internal/apps/{app_id}/settings", json=body)
    assert r.status_code == 200
    got = r.json()
    assert {k: got[k] for k in body} == body
    assert got["spent_usd"] == 0 and got["budget_levels_reached"] == []
    r = await client.put(f"/internal/apps/{app_id}/settings", json={"low_balance_threshold": 5})
    assert (r.json()["low_balance_threshold"], r.json()["free_daily_quota"]) == (5, 3)
    balance = (await client.get(f"{user_url(app_id)}/balance")).json()
    assert (balance["free_quota_left"], balance["free_quota_per_day"]) == (3, 3)
    for bad in ({"plan": "gold"}, {"free_daily_quota": -1}, {"soft_cap_ratio": 0},
                {"monthly_budget_usd": -1}, {"nope": 1}):  # fmt: skip
        r = await client.put(f"/internal/apps/{app_id}/settings", json=bad)
        assert r.status_code == 422, bad


async def test_allocating_plans_now_credits_each_user_once(
    client: httpx.AsyncClient, app_id: UUID
) -> None:
    opted_out = uuid4()
    await client.put(f"/internal/apps/{app_id}/settings", json={"plan": "basic"})
    await client.put(f"/internal/apps/{opted_out}/settings", json={"monthly_allocations": False})
    for app, user in ((app_id, "ann"), (app_id, "bob"), (opted_out, "cat")):
        r = await client.post(f"{user_url(app, user)}/grants", json={"amount": 1, "reason": "x"})
        assert r.status_code == 201
    r = await client.post("/internal/plans/allocate", params={"limit": 1})
    assert r.status_code == 200
    assert (r.json()["users"], r.json()["tokens"], r.json()["more"]) == (1, 500, True)
    r = await client.post("/internal/plans/allocate")
    assert (r.json()["users"], r.json()["tokens"], r.json()["more"]) == (1, 500, False)
    assert (await client.post("/internal/plans/allocate")).json()["users"] == 0  # once a month
    balances = [
        (await client.get(f"{user_url(app, user)}/balance")).json()["balance"]
        for app, user in ((app_id, "ann"), (app_id, "bob"), (opted_out, "cat"))
    ]
    assert balances == [501, 501, 1]
    ledger = (await client.get(f"{user_url(app_id, 'ann')}/ledger")).json()["entries"]
    assert [e["kind"] for e in ledger] == ["plan_allocation", "grant"]
    r = await client.post("/internal/plans/allocate", params={"limit": 0})
    assert r.status_code == 422


async def test_pricing_rules_and_app_overrides(client: httpx.AsyncClient, app_id: UUID) -> None:
    r = await client.put("/internal/pricing/fancy", json={"base_tokens": 20, "hd_multiplier": 2})
    assert r.status_code == 200
    rules = (await client.get("/internal/pricing")).json()["rules"]
    assert {(x["model"], x["base_tokens"], x["hd_multiplier"]) for x in rules} == {
        ("mock", 10, 1.5), ("fancy", 20, 2.0)
    }  # fmt: skip
    r = await client.put(f"/internal/apps/{app_id}/pricing/fancy", json={"base_tokens": 7})
    assert r.status_code == 200
    prices = (await client.get("/internal/prices", params={"app_id": str(app_id)})).json()
    fancy = next(p for p in prices["prices"] if p["model"] == "fancy")
    assert (fancy["tokens_per_output"], fancy["hd_tokens_per_output"], fancy["overridden"]) == (
        7, 11, True
    )  # fmt: skip
    assert (await client.delete(f"/internal/apps/{app_id}/pricing/fancy")).status_code == 204
    r = await client.delete(f"/internal/apps/{app_id}/pricing/fancy")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = await client.put("/internal/pricing/mock", json={"base_tokens": 0})
    assert r.status_code == 422


async def test_plans_are_listed_and_editable(client: httpx.AsyncClient) -> None:
    plans = (await client.get("/internal/plans")).json()["plans"]
    assert {p["plan"]: p["monthly_tokens"] for p in plans} == {
        "free": 0, "basic": 500, "pro": 2000, "enterprise": 10000
    }  # fmt: skip
    r = await client.put("/internal/plans/pro", json={"monthly_tokens": 2500})
    assert r.json() == {"plan": "pro", "monthly_tokens": 2500}
    assert (await client.put("/internal/plans/gold", json={"monthly_tokens": 1})).status_code == 422


async def test_batch_grant_all_or_nothing(client: httpx.AsyncClient, app_id: UUID) -> None:
    url = f"/internal/apps/{app_id}/grants/batch"
    good = {"user_id": "a", "amount": 10, "reason": "promo"}
    expired = {**good, "user_id": "b", "expires_at": "2000-01-01T00:00:00Z"}
    for bad in ({**good, "user_id": "b", "amount": 0}, expired):
        r = await client.post(url, json={"grants": [good, bad]})
        assert r.status_code == 422
    assert (await client.get(f"{user_url(app_id, 'a')}/balance")).json()["balance"] == 0
    body = {"grants": [good, {**good, "user_id": "b", "kind": "bonus"}], "idempotency_key": "b1"}
    first = await client.post(url, json=body)
    assert first.status_code == 201
    results = first.json()["results"]
    assert [(x["user_id"], x["balance"], x["available"]) for x in results] == [
        ("a", 10, 10), ("b", 10, 10)
    ]  # fmt: skip
    again = await client.post(url, json=body)
    assert again.json() == first.json()


async def test_adjustments_and_expiring_grants(client: httpx.AsyncClient, app_id: UUID) -> None:
    r = await client.post(
        f"{user_url(app_id)}/grants",
        json={"amount": 30, "reason": "trial", "expires_at": "2099-01-01T00:00:00Z",
              "kind": "bonus"},
    )  # fmt: skip
    assert r.status_code == 201
    adj = f"{user_url(app_id)}/adjustments"
    r = await client.post(adj, json={"amount": -31, "reason": "fix", "idempotency_key": "x"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "insufficient_tokens")
    r = await client.post(adj, json={"amount": -10, "reason": "fix", "idempotency_key": "y"})
    assert (r.status_code, r.json()["balance"]) == (201, 20)
    assert (await client.post(adj, json={"amount": 0, "reason": "fix"})).status_code == 422
    entries = (await client.get(f"{user_url(app_id)}/ledger")).json()["entries"]
    assert [(e["kind"], e["balance_change"]) for e in entries] == [
        ("adjustment", -10), ("bonus", 30)
    ]  # fmt: skip


async def test_a_budget_lowered_under_the_spend_is_announced_once(
    client: httpx.AsyncClient, app_id: UUID, sql: Any, outbox: Any
) -> None:
    await sql(
        "INSERT INTO app_spend (app_id, period, spent_usd)"
        " VALUES (:a, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'), 9)",
        a=app_id,
    )
    url = f"/internal/apps/{app_id}/settings"
    r = await client.put(url, json={"monthly_budget_usd": 10})
    assert r.json()["budget_levels_reached"] == ["soft"]
    await client.put(url, json={"monthly_budget_usd": 5})
    await client.put(url, json={"monthly_budget_usd": 4})  # already announced: nothing new
    alerts = [e for e in await outbox() if e.type == "budget.exceeded"]
    assert [(a.app_id, a.payload.level, a.payload.budget_usd) for a in alerts] == [
        (app_id, "soft", "10.0000"), (app_id, "hard", "5.0000")
    ]  # fmt: skip


async def test_disabling_a_user(client: httpx.AsyncClient, app_id: UUID) -> None:
    r = await client.put(user_url(app_id, "bad"), json={"disabled": True})
    assert (r.status_code, r.json()["disabled"]) == (200, True)
    assert (await client.get(f"{user_url(app_id, 'bad')}/balance")).json()["disabled"] is True
    other = uuid4()  # tenant-scoped: the same user id in another app is untouched
    assert (await client.get(f"{user_url(other, 'bad')}/balance")).json()["disabled"] is False
    r = await client.put(user_url(app_id, "bad"), json={"disabled": "yes"})
    assert r.status_code == 422
