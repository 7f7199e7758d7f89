"""Rate-limit leases against the real store (migration 0009, adapters/accept.py): a large
bucket's grant carries extra units that the replica's next requests spend without the store,
the store's count is always what was admitted plus what replicas hold, unused units go back,
and two replicas never admit more than the quota."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from genhub_gateway.adapters.accept import JobAcceptor
from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.domain import leases
from genhub_gateway.domain.ratelimit import Limit, admitted


@pytest.fixture
async def replicas(migrated_db: str) -> AsyncIterator[list[JobAcceptor]]:
    """Two acceptors on two connection pools, as two gateway replicas have."""
    pools = [PgPool(migrated_db, max_size=10) for _ in range(2)]
    yield [JobAcceptor(pool) for pool in pools]
    for pool in pools:
        await pool.close()


@pytest.fixture
async def store(migrated_db: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(migrated_db.replace("postgresql+asyncpg://", "postgresql://"))
    yield conn
    await conn.close()


async def counted(store: asyncpg.Connection, limit: Limit) -> int:
    value = await store.fetchval(
        "SELECT count FROM rate_limit_counters WHERE bucket = $1", limit.bucket
    )
    return int(value)


def big(quota: int = 100_000) -> Limit:
    return Limit("app", f"app:{uuid.uuid4()}", quota)


async def test_a_large_bucket_leases_units_that_later_requests_spend(
    replicas: list[JobAcceptor], store: asyncpg.Connection
) -> None:
    acceptor, limit = replicas[0], big()
    [first] = await acceptor.hit([limit])
    assert first.allowed and first.count == 1
    assert await counted(store, limit) == 1 + leases.MAX_EXTRA  # counted, and held
    assert acceptor.held(limit.bucket) == leases.MAX_EXTRA
    spent = [await acceptor.hit([limit]) for _ in range(leases.MAX_EXTRA)]
    assert [u.count for [u] in spent] == list(range(2, 2 + leases.MAX_EXTRA))
    assert await counted(store, limit) == 1 + leases.MAX_EXTRA  # the store was not asked
    [next_grant] = await acceptor.hit([limit])
    assert next_grant.count == 2 + leases.MAX_EXTRA
    assert await counted(store, limit) == 2 * (1 + leases.MAX_EXTRA)


async def test_small_buckets_are_counted_one_request_at_a_time(
    replicas: list[JobAcceptor], store: asyncpg.Connection
) -> None:
    acceptor, limit = replicas[0], big(leases.MIN_QUOTA - 1)
    await acceptor.hit([limit])
    assert await counted(store, limit) == 1 and acceptor.held(limit.bucket) == 0


async def test_near_the_limit_a_grant_carries_no_extra_units(
    replicas: list[JobAcceptor], store: asyncpg.Connection
) -> None:
    limit = big(2048)
    await replicas[0].hit([limit])
    # 2,047 left after the request's own unit: the grant carries 1/SHARE of it.
    assert await counted(store, limit) == 1 + 2047 // leases.SHARE
    await store.execute(
        "UPDATE rate_limit_counters SET count = 2000 WHERE bucket = $1", limit.bucket
    )
    [usage] = await replicas[1].hit([limit])  # 47 left after it: less than SHARE
    assert usage.count == 2001 and replicas[1].held(limit.bucket) == 0
    assert await counted(store, limit) == 2001


async def test_a_refused_request_gives_its_leased_unit_back(
    replicas: list[JobAcceptor], store: asyncpg.Connection
) -> None:
    acceptor, app = replicas[0], big()
    user = Limit("user", f"user:{uuid.uuid4()}", 1)
    assert admitted(await acceptor.hit([app, user]))
    refused = await acceptor.hit([app, user])  # the app's unit is leased, the user is full
    assert [(u.limit.name, u.allowed) for u in refused] == [("app", True), ("user", False)]
    assert acceptor.held(app.bucket) == leases.MAX_EXTRA  # spent, then given back
    assert await counted(store, app) == 1 + leases.MAX_EXTRA
    assert await counted(store, user) == 1


async def test_idle_units_go_back_to_the_store(
    replicas: list[JobAcceptor], store: asyncpg.Connection
) -> None:
    acceptor, limit = replicas[0], big()
    await acceptor.hit([limit])
    await acceptor.hit([limit])
    await acceptor.release_idle(now=time.monotonic())  # just used: kept
    assert await counted(store, limit) == 1 + leases.MAX_EXTRA
    await acceptor.release_idle(now=time.monotonic() + leases.IDLE_S)
    assert await counted(store, limit) == 2 and acceptor.held(limit.bucket) == 0


async def test_units_of_a_window_that_ended_are_not_given_back_to_the_next(
    replicas: list[JobAcceptor], store: asyncpg.Connection
) -> None:
    limit = big()
    await replicas[0].hit([limit])
    await store.execute(  # as if a minute had passed
        "UPDATE rate_limit_counters SET window_start = now() - interval '61 seconds'"
        " WHERE bucket = $1",
        limit.bucket,
    )
    [usage] = await replicas[1].hit([limit])  # opens the next window, leasing in it
    assert usage.count == 1
    await replicas[0].stop()  # gives back units counted in the window that ended
    assert await counted(store, limit) == 1 + leases.MAX_EXTRA
    await replicas[1].stop()
    assert await counted(store, limit) == 1


async def test_two_replicas_never_admit_more_than_a_leased_quota(
    replicas: list[JobAcceptor], store: asyncpg.Connection
) -> None:
    limit = big(2048)
    results = await asyncio.gather(*(replicas[i % 2].hit([limit]) for i in range(2600)))
    admitted_counts = [u.count for [u] in results if u.allowed]
    held = sum(r.held(limit.bucket) for r in replicas)
    # The store counted exactly what was admitted and what the replicas still hold ...
    assert await counted(store, limit) == len(admitted_counts) + held
    assert len(admitted_counts) <= limit.quota
    # ... every admitted request had a unit of its own ...
    assert len(set(admitted_counts)) == len(admitted_counts)
    assert max(admitted_counts) <= limit.quota
    # ... and what a replica held when the other ran out is bounded, and goes back.
    assert len(admitted_counts) >= limit.quota - 2 * leases.MAX_EXTRA
    for replica in replicas:
        await replica.stop()
    assert await counted(store, limit) == len(admitted_counts)
