"""App settings that shape jobs (against the test database, upstreams faked): welcome grant,
rate-limit settings, default webhook URL, plan, and the AppOptions snapshot in every JobSpec;
the audit log of admin actions and grants; admin tokens."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_contracts import parse_event
from genhub_gateway.config import Settings

from .test_gateway_db import ADMIN, BODY, create_tenant, rows

pytestmark = pytest.mark.usefixtures("clean_db")


async def _spec(app: FastAPI) -> Any:
    [(payload,)] = await rows(app, "SELECT payload FROM outbox ORDER BY id DESC LIMIT 1")
    return parse_event(bytes(payload)).payload.spec


async def test_app_settings_are_stored_and_copied_into_every_job(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(
        http,
        plan="basic",
        webhook_url="https://hooks.example.com/app",
        welcome_grant=0,
        rate_limit_per_minute=1000,
        user_rate_limit_per_minute=50,
        options={"cache": False, "enhance_prompt": True, "output_retention_days": 7},
    )
    shown = created["app"]
    assert (shown["rate_limit_per_minute"], shown["user_rate_limit_per_minute"]) == (1000, 50)
    assert shown["options"]["cache"] is False and shown["options"]["output_retention_days"] == 7

    key = created["api_key"]
    body = {
        **BODY,
        "input": {"prompt": "a red fox", "quality": "hd"},
        "cache": False,
        "enhance_prompt": False,
    }
    response = await http.post(
        "/v1/generate", headers={"X-API-Key": key, "X-User-ID": "u1"}, json=body
    )
    assert response.status_code == 202, response.text
    spec = await _spec(app)
    assert spec.plan == "basic" and str(spec.webhook_url) == "https://hooks.example.com/app"
    assert spec.input.quality == "hd" and spec.cache is False and spec.enhance_prompt is False
    assert spec.app.cache is False and spec.app.enhance_prompt is True
    assert spec.app.output_retention_days == 7 and spec.app.watermark is None

    # A partial options change keeps the other options; new jobs get the new snapshot.
    patch = {
        "options": {"watermark": {"text": "genhub", "position": "center"}, "cache": True},
        "plan": "pro",
    }
    changed = await http.patch(f"/admin/apps/{shown['id']}", headers=ADMIN, json=patch)
    assert changed.status_code == 200, changed.text
    assert changed.json()["options"]["enhance_prompt"] is True
    response = await http.post(
        "/v1/generate", headers={"X-API-Key": key, "X-User-ID": "u1"}, json=BODY
    )
    assert response.status_code == 202
    spec = await _spec(app)
    assert spec.plan == "pro" and spec.app.cache is True and spec.app.enhance_prompt is True
    assert spec.app.watermark is not None and spec.app.watermark.position == "center"
    assert spec.enhance_prompt is None and spec.cache is True  # request defaults


async def test_the_plan_is_kept_in_step_with_billing(
    http: httpx.AsyncClient, upstreams: Any
) -> None:
    app_id = (await create_tenant(http, plan="basic"))["app"]["id"]
    assert upstreams.billing_settings[app_id] == {"plan": "basic"}
    await http.patch(f"/admin/apps/{app_id}", headers=ADMIN, json={"plan": "enterprise"})
    assert upstreams.billing_settings[app_id] == {"plan": "enterprise"}
    upstreams.down.add("billing")
    refused = await http.patch(f"/admin/apps/{app_id}", headers=ADMIN, json={"plan": "free"})
    assert refused.status_code == 503
    upstreams.down.clear()
    shown = (await http.get(f"/admin/apps/{app_id}", headers=ADMIN)).json()
    assert shown["plan"] == "enterprise"  # nothing changed while billing could not follow


@pytest.mark.parametrize(
    "change",
    [
        {"welcome_grant": -1},
        {"rate_limit_per_minute": 0},
        {"user_rate_limit_per_minute": 10_000_001},
        {"options": {"output_retention_days": 0}},
        {"options": {"no_such_option": True}},
        {"options": {"watermark": {"text": ""}}},
    ],
)
async def test_bad_settings_are_422_with_the_field(
    http: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    app_id = (await create_tenant(http))["app"]["id"]
    response = await http.patch(f"/admin/apps/{app_id}", headers=ADMIN, json=change)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert any(next(iter(change)) in d["field"] for d in details), details


async def test_welcome_grant_is_applied_once_per_user_through_billing(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any
) -> None:
    created = await create_tenant(http, welcome_grant=30)
    key = created["api_key"]
    headers = {"X-API-Key": key, "X-User-ID": "newbie"}
    # Concurrent first requests, then more later: billing is asked with one fixed key.
    answers = await asyncio.gather(
        *(http.post("/v1/generate", headers=headers, json=BODY) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [202] * 4
    app.state.gateway.known_users.seen.clear()  # as another replica would see it
    assert (await http.get("/v1/users/newbie", headers={"X-API-Key": key})).json()["balance"] == 30

    grants = [
        json.loads(r.content) for r in upstreams.requests if r.url.path.endswith("/newbie/grants")
    ]
    assert grants and {g["idempotency_key"] for g in grants} == {"gateway:welcome"}
    assert {g["amount"] for g in grants} == {30}
    # The fake billing (like the real one) applies a key once; the gateway records it once.
    assert upstreams.balances[(created["app"]["id"], "newbie")] == 30
    marked = await rows(app, "SELECT welcome_tokens, welcome_granted_at FROM end_users")
    assert len(marked) == 1 and marked[0][0] == 30 and marked[0][1] is not None
    audited = await rows(
        app, "SELECT actor, target_id FROM audit_log WHERE action = 'tokens.grant'"
    )
    assert audited == [("system:welcome", "newbie")]

    # A user first seen while the welcome grant is 0 never gets one later.
    await http.patch(
        f"/admin/apps/{created['app']['id']}", headers=ADMIN, json={"welcome_grant": 0}
    )
    early = {"X-API-Key": key, "X-User-ID": "early"}
    assert (await http.post("/v1/generate", headers=early, json=BODY)).status_code == 202
    await http.patch(
        f"/admin/apps/{created['app']['id']}", headers=ADMIN, json={"welcome_grant": 9}
    )
    app.state.gateway.known_users.seen.clear()
    assert (await http.get("/v1/users/early", headers={"X-API-Key": key})).json()["balance"] == 0


async def test_welcome_grant_waits_while_billing_is_down(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any
) -> None:
    key = (await create_tenant(http, welcome_grant=5))["api_key"]
    upstreams.down.add("billing")
    headers = {"X-API-Key": key, "X-User-ID": "u9"}
    response = await http.post("/v1/generate", headers=headers, json=BODY)
    assert (response.status_code, response.json()["error"]["code"]) == (503, "upstream_unavailable")
    assert await rows(app, "SELECT 1 FROM jobs") == []  # no job runs without its welcome tokens
    upstreams.down.clear()
    assert (await http.post("/v1/generate", headers=headers, json=BODY)).status_code == 202
    assert [g for g in upstreams.requests if g.url.path.endswith("/u9/grants")]
    [(granted,)] = await rows(app, "SELECT welcome_granted_at FROM end_users")
    assert granted is not None


async def test_every_admin_action_and_grant_is_audited(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(http, slug="audited")
    app_id, key = created["app"]["id"], created["api_key"]
    await http.patch(f"/admin/apps/{app_id}", headers=ADMIN, json={"name": "Renamed"})
    new_key = (await http.post(f"/admin/apps/{app_id}/keys", headers=ADMIN)).json()["key"]
    await http.delete(f"/admin/apps/{app_id}/keys/{new_key['id']}", headers=ADMIN)
    grant = await http.post(
        "/v1/users/u1/tokens",
        headers={"X-API-Key": key, "X-Request-ID": "req-42"},
        json={"amount": 7, "reason": "support"},
    )
    assert grant.status_code == 201 and grant.headers["x-request-id"] == "req-42"

    page = (await http.get("/admin/audit", headers=ADMIN, params={"app_id": app_id})).json()
    actions = [e["action"] for e in page["entries"]]
    assert actions == [
        "tokens.grant",
        "key.revoke",
        "key.create",
        "app.update",
        "key.create",
        "app.create",
    ]
    grant_entry, revoke, _, update = page["entries"][:4]
    assert grant_entry["actor"].startswith("app:audited/key:gh_live_")
    assert grant_entry["request_id"] == "req-42" and grant_entry["after"]["amount"] == 7
    assert revoke["before"]["revoked_at"] is None and revoke["after"]["revoked_at"] is not None
    assert (update["before"]["name"], update["after"]["name"]) == ("Audited", "Renamed")
    assert update["actor"] == "admin:bootstrap" and update["request_id"]

    # Filters and the cursor walk every entry exactly once.
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"app_id": app_id, "limit": 4}
        if cursor:
            params["cursor"] = cursor
        body = (await http.get("/admin/audit", headers=ADMIN, params=params)).json()
        seen += [e["id"] for e in body["entries"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in page["entries"]]
    only = await http.get("/admin/audit", headers=ADMIN, params={"action": "key.revoke"})
    assert [e["target_id"] for e in only.json()["entries"]] == [new_key["id"]]
    bad = await http.get("/admin/audit", headers=ADMIN, params={"cursor": "!!"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_cursor")

    # The log cannot be rewritten.
    async with app.state.runtime.engine.begin() as conn:
        from sqlalchemy import text

        with pytest.raises(Exception, match="append only"):
            await conn.execute(text("UPDATE audit_log SET actor = 'someone else'"))


async def test_admin_tokens_are_created_hashed_and_revocable(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await http.post("/admin/tokens", headers=ADMIN, json={"name": "ops-alice"})
    assert created.status_code == 201, created.text
    token, token_id = created.json()["token"], created.json()["admin_token"]["id"]
    assert token.startswith("gh_admin_")
    stored = await rows(app, "SELECT token_hash, prefix FROM admin_tokens")
    assert len(stored) == 1 and token not in stored[0] and token.startswith(stored[0][1])

    mine = {"Authorization": f"Bearer {token}"}
    response = await http.post("/admin/apps", headers=mine, json={"name": "B", "slug": "by-alice"})
    assert response.status_code == 201
    [(actor,)] = await rows(app, "SELECT actor FROM audit_log WHERE action = 'app.create'")
    assert actor.startswith("admin:ops-alice/gh_admin_")

    assert (await http.delete(f"/admin/tokens/{token_id}", headers=ADMIN)).status_code == 200
    refused = await http.get("/admin/apps", headers=mine)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_admin_token")
    assert (await http.get("/admin/apps", headers=ADMIN)).status_code == 200  # bootstrap still
    listed = (await http.get("/admin/tokens", headers=ADMIN)).json()["tokens"]
    assert listed[0]["revoked_at"] is not None and "token_hash" not in listed[0]


def test_sessions_are_not_pinged_with_a_round_trip_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GENHUB_ADMIN_TOKEN", "t")
    monkeypatch.delenv("DB_PRE_PING", raising=False)
    assert Settings().db_pre_ping == "local"
    monkeypatch.setenv("DB_PRE_PING", "roundtrip")
    assert Settings().db_pre_ping == "roundtrip"
