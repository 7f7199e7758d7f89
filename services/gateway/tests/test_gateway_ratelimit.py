"""Rate limits: the pure header/decision rules, the shared PostgreSQL counter (exact under
concurrency from several engines, as from several replicas), and the HTTP answers."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_gateway.adapters.accept import JobAcceptor
from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.domain import ratelimit as rl
from sqlalchemy.ext.asyncio import create_async_engine

from .test_gateway_db import ADMIN, BODY, create_tenant


def test_headers_follow_the_ietf_draft() -> None:
    app = rl.Limit("app", "app:a", 100)
    user = rl.Limit("user", "user:a:u", 10)
    usages = [rl.Usage(app, True, 40, 12.2), rl.Usage(user, True, 10, 30.0)]
    assert rl.admitted(usages)
    assert rl.headers(usages) == {
        "RateLimit-Policy": '"app";q=100;w=60, "user";q=10;w=60',
        "RateLimit": '"app";r=60;t=13, "user";r=0;t=30',
    }


def test_refusal_has_retry_after_of_the_longest_refusing_window() -> None:
    app = rl.Limit("app", "app:a", 100)
    user = rl.Limit("user", "user:a:u", 10)
    usages = [rl.Usage(app, True, 40, 50.0), rl.Usage(user, False, 10, 7.3)]
    assert not rl.admitted(usages)
    assert rl.retry_after_s(usages) == 8  # the app bucket had room; only the user's counts
    assert rl.headers(usages)["Retry-After"] == "8"
    assert rl.retry_after_s([rl.Usage(user, False, 10, 0.01)]) == 1  # never 0


def test_request_limits_name_the_user_only_when_given() -> None:
    app_id = uuid.uuid4()
    assert [x.bucket for x in rl.request_limits(app_id, 5, None, 2)] == [f"app:{app_id}"]
    both = rl.request_limits(app_id, 5, "u:1", 2)
    assert [(x.name, x.bucket, x.quota) for x in both] == [
        ("app", f"app:{app_id}", 5),
        ("user", f"user:{app_id}:u:1", 2),
    ]


@pytest.fixture
async def limiters(migrated_db: str) -> Any:
    """Two limiters on two connection pools, as two replicas would have."""
    pools = [PgPool(migrated_db, max_size=10) for _ in range(2)]
    yield [JobAcceptor(p) for p in pools]
    for p in pools:
        await p.close()


async def test_concurrent_hits_from_two_pools_admit_exactly_the_quota(limiters: Any) -> None:
    bucket = f"app:{uuid.uuid4()}"
    limit = rl.Limit("app", bucket, 100)
    results = await asyncio.gather(*(limiters[i % 2].hit([limit]) for i in range(160)))
    admitted = [u for [u] in results if u.allowed]
    assert len(admitted) == 100
    assert sorted(u.count for u in admitted) == list(range(1, 101))
    refused = [u for [u] in results if not u.allowed]
    assert len(refused) == 60 and all(0 < u.reset_s <= 60 for u in refused)


async def test_a_refused_request_does_not_use_up_the_other_buckets(limiters: Any) -> None:
    app = rl.Limit("app", f"app:{uuid.uuid4()}", 10)
    user = rl.Limit("user", f"user:{uuid.uuid4()}", 2)
    outcomes = [rl.admitted(await limiters[0].hit([app, user])) for _ in range(5)]
    assert outcomes == [True, True, False, False, False]
    [usage] = await limiters[1].hit([app])
    assert usage.allowed and usage.count == 3  # the three refusals gave their unit back


async def test_a_new_window_opens_after_the_old_one_ends(limiters: Any, migrated_db: str) -> None:
    limit = rl.Limit("app", f"app:{uuid.uuid4()}", 1, window_s=60)
    assert rl.admitted(await limiters[0].hit([limit]))
    assert not rl.admitted(await limiters[0].hit([limit]))
    engine = create_async_engine(migrated_db)
    async with engine.begin() as conn:  # as if a minute had passed
        from sqlalchemy import text

        await conn.execute(
            text(
                "UPDATE rate_limit_counters SET window_start = now() - interval '61 seconds'"
                " WHERE bucket = :b"
            ),
            {"b": limit.bucket},
        )
    await engine.dispose()
    [usage] = await limiters[0].hit([limit])
    assert usage.allowed and usage.count == 1 and usage.reset_s > 59


@pytest.mark.usefixtures("clean_db")
async def test_app_and_user_limits_answer_429_with_headers(http: httpx.AsyncClient) -> None:
    created = await create_tenant(http, rate_limit_per_minute=4, user_rate_limit_per_minute=2)
    key = created["api_key"]
    first = await http.get("/v1/models", headers={"X-API-Key": key})
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"app";q=4;w=60'
    assert first.headers["ratelimit"].startswith('"app";r=3;t=')

    user = {"X-API-Key": key, "X-User-ID": "greedy"}
    assert (await http.post("/v1/generate", headers=user, json=BODY)).status_code == 202
    assert (await http.post("/v1/generate", headers=user, json=BODY)).status_code == 202
    refused = await http.post("/v1/generate", headers=user, json=BODY)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert '"user";r=0' in refused.headers["ratelimit"]
    # The refusal gave its unit back to the app's bucket (3 counted so far): another user of
    # the same app still has room, until the app's own limit is reached.
    other = {"X-API-Key": key, "X-User-ID": "modest"}
    assert (await http.post("/v1/generate", headers=other, json=BODY)).status_code == 202
    app_refused = await http.get("/v1/models", headers={"X-API-Key": key})
    assert app_refused.status_code == 429 and '"app";r=0' in app_refused.headers["ratelimit"]

    # An admin can raise the limit; it applies at once on this replica.
    await http.patch(
        f"/admin/apps/{created['app']['id']}", headers=ADMIN, json={"rate_limit_per_minute": 100}
    )
    assert (await http.get("/v1/models", headers={"X-API-Key": key})).status_code == 200


@pytest.mark.usefixtures("clean_db")
async def test_failed_authentication_is_limited_per_source_address(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    app.state.gateway.settings.auth_failure_limit = 3
    key = (await create_tenant(http))["api_key"]
    bad = {"X-API-Key": "gh_live_" + "x" * 43}
    codes = [(await http.get("/v1/models", headers=bad)).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    blocked = await http.get("/v1/models", headers=bad)
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_failed_authentications"
    assert int(blocked.headers["retry-after"]) >= 1
    bad_admin = await http.get("/admin/apps", headers={"Authorization": "Bearer nope"})
    assert bad_admin.status_code == 429  # the same address, the same counter
    # A valid key is not failed authentication.
    assert (await http.get("/v1/models", headers={"X-API-Key": key})).status_code == 200
