"""The group-committed accept statement (adapters/accept.py, migration 0006) against the real
test database: a batch counts its requests in order exactly as one request at a time would,
writes only the admitted requests' jobs, a key once, and two replicas' batches never admit
more than the quota."""

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_contracts import JobRequested, JobSpec
from genhub_contracts.events import JobRequestedPayload
from genhub_gateway.adapters.accept import Item, JobAcceptor, JobWrite
from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.domain.jobs import NewJob
from genhub_gateway.domain.ratelimit import Limit, request_limits

from .test_gateway_db import create_tenant, rows

pytestmark = pytest.mark.usefixtures("clean_db")


def job_write(app_id: uuid.UUID, user: str, key: str | None = None) -> JobWrite:
    spec = JobSpec(user_id=user, model="mock", input={"prompt": "a fox"})
    job = NewJob(
        app_id=app_id,
        user_id=user,
        model="mock",
        status="queued",
        priority=0,
        spec_json=spec.model_dump_json(),
        metadata={},
    )
    event = JobRequested.new(
        app_id=app_id, job_id=job.job_id, payload=JobRequestedPayload(spec=spec)
    )
    answer = {"job_id": str(job.job_id), "status": "queued"}
    return JobWrite.of(job, event, (key, "h" * 64, 202, answer) if key else None)


@pytest.fixture
async def app_id(http: httpx.AsyncClient) -> uuid.UUID:
    return uuid.UUID((await create_tenant(http))["app"]["id"])


async def test_a_batch_counts_its_requests_in_order(app: FastAPI, app_id: uuid.UUID) -> None:
    acceptor: JobAcceptor = app.state.gateway.acceptor
    users = ["u1", "u1", "u2", "u3", "u4"]
    items = [Item(request_limits(app_id, 3, user, 1), job_write(app_id, user)) for user in users]
    outcomes = await acceptor.run(items)  # one statement
    assert [o.admitted for o in outcomes] == [True, False, True, True, False]
    assert [o.written for o in outcomes] == [True, False, True, True, False]
    # u1's second request was refused by its user bucket and gave the app's unit back, so
    # u2 and u3 got the app's last two; u4 found the app full (its user bucket had room).
    assert [(u.limit.name, u.allowed, u.count) for u in outcomes[1].usages] == [
        ("app", True, 1),
        ("user", False, 1),
    ]
    assert [(u.limit.name, u.allowed, u.count) for u in outcomes[4].usages] == [
        ("app", False, 3),
        ("user", True, 0),
    ]
    assert all(0 < u.reset_s <= 60 for o in outcomes for u in o.usages)
    counters = dict(await rows(app, "SELECT bucket, count FROM rate_limit_counters"))
    assert counters == {
        f"app:{app_id}": 3,
        f"user:{app_id}:u1": 1,
        f"user:{app_id}:u2": 1,
        f"user:{app_id}:u3": 1,
        f"user:{app_id}:u4": 0,
    }
    written = await rows(app, "SELECT user_id FROM jobs ORDER BY user_id")
    assert [u for (u,) in written] == ["u1", "u2", "u3"]
    assert (await rows(app, "SELECT count(*) FROM outbox"))[0][0] == 3


async def test_an_ended_window_restarts_within_a_batch(app: FastAPI, app_id: uuid.UUID) -> None:
    acceptor: JobAcceptor = app.state.gateway.acceptor
    limit = Limit("app", f"app:{app_id}", 1)
    [first] = await acceptor.run([Item([limit])])
    assert first.admitted
    async with app.state.runtime.engine.begin() as conn:  # as if a minute had passed
        from sqlalchemy import text

        await conn.execute(
            text("UPDATE rate_limit_counters SET window_start = now() - interval '61 seconds'")
        )
    again = await acceptor.run([Item([limit]), Item([limit])])
    assert [o.admitted for o in again] == [True, False]
    assert again[0].usages[0].count == 1 and again[0].usages[0].reset_s > 59


async def test_a_key_is_written_once_per_batch_and_across_batches(
    app: FastAPI, app_id: uuid.UUID
) -> None:
    acceptor: JobAcceptor = app.state.gateway.acceptor
    first, twin, keyless = await acceptor.run(
        [
            Item(write=job_write(app_id, "u1", key="k-1")),
            Item(write=job_write(app_id, "u1", key="k-1")),
            Item(write=job_write(app_id, "u1")),
        ]
    )
    assert (first.written, twin.written, keyless.written) == (True, False, True)
    [later] = await acceptor.run([Item(write=job_write(app_id, "u1", key="k-1"))])
    assert not later.written
    keys = await rows(app, "SELECT key, job_id::text, state FROM idempotency_keys")
    jobs = {j for (j,) in await rows(app, "SELECT job_id::text FROM jobs")}
    assert len(keys) == 1 and keys[0][2] == "completed" and keys[0][1] in jobs
    assert len(jobs) == 2


async def test_two_replicas_batches_admit_exactly_the_quota(
    app: FastAPI, app_id: uuid.UUID, migrated_db: str
) -> None:
    other_pool = PgPool(migrated_db, max_size=10)
    acceptors = [app.state.gateway.acceptor, JobAcceptor(other_pool)]
    try:

        async def one(i: int) -> Any:
            user = f"u{i % 7}"
            return await acceptors[i % 2].submit(
                Item(request_limits(app_id, 100, user, 1000), job_write(app_id, user, f"k{i}"))
            )

        outcomes = await asyncio.gather(*(one(i) for i in range(160)))
    finally:
        await other_pool.close()
    assert sum(o.admitted for o in outcomes) == 100
    assert all(o.written == o.admitted for o in outcomes)
    app_counts = sorted(o.usages[0].count for o in outcomes if o.admitted)
    assert app_counts == list(range(1, 101))
    assert (await rows(app, "SELECT count(*) FROM jobs"))[0][0] == 100
    assert (await rows(app, "SELECT count(*) FROM outbox"))[0][0] == 100
    assert (await rows(app, "SELECT count(*) FROM idempotency_keys"))[0][0] == 100
