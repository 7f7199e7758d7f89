"""Rate limits are shared by gateway replicas: with two gateway processes, an app limited to
100 requests per minute gets at most 100 through in total, and one limited to 1,500 (a bucket
large enough for the replicas to lease units of it ahead of use) at most 1,500; failed
authentication is limited per source address."""

import asyncio
import secrets

import httpx
from e2e_gateway_replica import second_gateway
from e2e_support import Endpoints, new_app
from genhub_client import AsyncGenhubAdmin
from genhub_gateway.domain import leases


async def calls_across_two_gateways(
    admin: AsyncGenhubAdmin, endpoints: Endpoints, *, quota: int, calls: int
) -> list[httpx.Response]:
    """A new app limited to `quota` requests per minute makes `calls` requests, alternating
    between the stack's gateway and a second gateway process, 20 at a time on each."""
    created = await new_app(admin, f"e2e-limit-{secrets.token_hex(4)}")
    await admin.update_app(created.app.id, rate_limit_per_minute=quota)
    headers = {"X-API-Key": created.api_key}
    async with (
        second_gateway() as other_url,
        httpx.AsyncClient(base_url=endpoints.gateway, headers=headers, timeout=30) as one,
        httpx.AsyncClient(base_url=other_url, headers=headers, timeout=30) as two,
    ):
        gate = asyncio.Semaphore(40)

        async def call(client: httpx.AsyncClient) -> httpx.Response:
            async with gate:
                return await client.get("/v1/models")

        return await asyncio.gather(*(call((one, two)[i % 2]) for i in range(calls)))


async def test_a_limit_of_100_per_minute_holds_across_two_gateways(
    admin: AsyncGenhubAdmin, endpoints: Endpoints
) -> None:
    answers = await calls_across_two_gateways(admin, endpoints, quota=100, calls=160)
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 100, statuses
    assert statuses.count(429) == 60, statuses
    # Both replicas admitted some and refused some: the counter really is shared.
    by_replica = [statuses[i::2] for i in range(2)]
    assert all(200 in s for s in by_replica), by_replica
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"app";q=100;w=60'
    assert refused.headers["ratelimit"].startswith('"app";r=0;t=')


async def test_a_leased_limit_holds_across_two_gateways(
    admin: AsyncGenhubAdmin, endpoints: Endpoints
) -> None:
    quota = 1500
    assert quota >= leases.MIN_QUOTA  # the replicas lease units of this bucket
    answers = await calls_across_two_gateways(admin, endpoints, quota=quota, calls=quota + 200)
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {200, 429}, set(statuses)
    # Never more than the quota; fewer only by units a replica held when the other ran out.
    assert quota - 2 * leases.MAX_EXTRA <= statuses.count(200) <= quota, statuses.count(200)
    by_replica = [statuses[i::2] for i in range(2)]
    assert all(s.count(200) > leases.MAX_EXTRA for s in by_replica), by_replica


async def test_failed_authentication_gets_429_from_the_same_address(
    endpoints: Endpoints,
) -> None:
    # Another loopback address is another source (the counter is per address).
    async with httpx.AsyncClient(
        base_url=endpoints.gateway,
        timeout=10,
        transport=httpx.AsyncHTTPTransport(
            local_address=f"127.0.{secrets.randbelow(200) + 20}.{secrets.randbelow(200) + 20}"
        ),
    ) as http:
        bad = {"X-API-Key": "gh_live_" + secrets.token_urlsafe(32)}
        codes = [(await http.get("/v1/models", headers=bad)).status_code for _ in range(40)]
    assert 401 in codes and codes[-1] == 429
    first_429 = codes.index(429)
    assert all(c == 401 for c in codes[:first_429]) and all(c == 429 for c in codes[first_429:])
