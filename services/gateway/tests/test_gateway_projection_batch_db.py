"""The read-model projection in batches (handlers/kafka.py, services.project_many) against the
real test database: events apply in delivery order, several per job, only to the event's own
app's job, and the registered batch handlers are the ones the consumer runs. The one-statement
write (adapters/projection.py) leaves every row as the domain rules applied one event at a
time would, and concurrent batches on the same jobs neither deadlock nor lose an update."""

import asyncio
import itertools
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_contracts import JobStatus, RejectReason, TokensRejected
from genhub_contracts.events import TokensRejectedPayload
from genhub_gateway import services
from genhub_gateway.domain.readmodel import JobProgress
from genhub_gateway.handlers import kafka as handlers
from sqlalchemy import text

from .test_gateway_db import create_tenant, rows, saga_events, submit
from .test_gateway_readmodel import FAILED_WITHOUT_PROVIDER, FOLD_STEPS, one_by_one

pytestmark = pytest.mark.usefixtures("clean_db")


def rejection(app_id: uuid.UUID, job_id: uuid.UUID) -> TokensRejected:
    return TokensRejected.new(
        app_id=app_id,
        job_id=job_id,
        payload=TokensRejectedPayload(
            user_id="u1",
            reason=RejectReason.INSUFFICIENT_TOKENS,
            message="needs 10 tokens, has 1",
            balance=1,
            required=10,
        ),
    )


async def statuses(app: FastAPI) -> dict[str, tuple[str, int | None, int | None]]:
    found = await rows(app, "SELECT job_id, status, tokens_reserved, tokens_charged FROM jobs")
    return {str(job_id): (status, reserved, charged) for job_id, status, reserved, charged in found}


async def test_a_batch_applies_each_jobs_events_in_order_within_its_app(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    acme, other = await create_tenant(http, "acme"), await create_tenant(http, "other")
    acme_id = uuid.UUID(acme["app"]["id"])
    ran, refused = await submit(http, acme["api_key"]), await submit(http, acme["api_key"])
    others = await submit(http, other["api_key"])
    saga = saga_events(acme_id, uuid.UUID(ran))
    refusals = [rejection(acme_id, uuid.UUID(job)) for job in (refused, others)]
    # acme naming the other app's job (refusals[1]) and a job nobody has: both ignored
    refusals.append(rejection(acme_id, uuid.uuid4()))
    changes: list[tuple[Any, Any]] = [
        (saga["reserved"], handlers.reserved(saga["reserved"])),
        (refusals[0], handlers.rejected(refusals[0])),
        (saga["started"], handlers.started(saga["started"])),
        (saga["completed"], handlers.completed(saga["completed"])),
        (saga["settled"], handlers.settled(saga["settled"])),
        *((event, handlers.rejected(event)) for event in refusals[1:]),
    ]
    async with app.state.runtime.uow() as uow:
        await services.project_many(uow, changes)
        await uow.commit()

    assert await statuses(app) == {
        ran: ("succeeded", 10, 10),
        refused: ("rejected", None, None),
        others: ("queued", None, None),
    }


async def test_each_topic_is_consumed_by_a_batch_handler(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    acme = await create_tenant(http)
    acme_id = uuid.UUID(acme["app"]["id"])
    jobs = [await submit(http, acme["api_key"], user=f"u{i}") for i in range(3)]
    routes = app.state.runtime.consumer._batch_routes
    assert set(routes) == {
        "tokens.reserved",
        "tokens.rejected",
        "job.started",
        "job.completed",
        "tokens.settled",
    }
    assert routes["tokens.rejected"].name == "gateway.on_tokens_rejected"  # the inbox's name

    async with app.state.runtime.uow() as uow:
        await routes["tokens.rejected"].handler(
            [rejection(acme_id, uuid.UUID(job)) for job in jobs[:2]], uow
        )
        await uow.commit()

    assert await statuses(app) == {
        jobs[0]: ("rejected", None, None),
        jobs[1]: ("rejected", None, None),
        jobs[2]: ("queued", None, None),
    }


async def copies_of(app: FastAPI, job_id: str, count: int) -> list[uuid.UUID]:
    """`count` more queued jobs like `job_id` (same app and user), inserted directly."""
    ids = [uuid.uuid4() for _ in range(count)]
    async with app.state.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO jobs (job_id, app_id, user_id, model, status, priority, spec,"
                " metadata, outputs, attempts, created_at, updated_at)"
                " SELECT new_id, app_id, user_id, model, status, priority, spec, metadata,"
                " outputs, attempts, created_at, updated_at"
                " FROM jobs, unnest(CAST(:ids AS uuid[])) AS new_id WHERE job_id = :job_id"
            ),
            {"ids": ids, "job_id": uuid.UUID(job_id)},
        )
    return ids


async def progress_rows(app: FastAPI) -> dict[uuid.UUID, JobProgress]:
    found = await rows(
        app,
        "SELECT job_id, status, tokens_reserved, tokens_charged, tokens_refunded, provider,"
        " attempts, error_code, error_message, error_details, outputs, reserved_at, started_at,"
        " completed_at, settled_at FROM jobs",
    )
    return {
        row[0]: JobProgress(JobStatus(row[1]), *row[2:])  # fields in JobProgress's order
        for row in found
    }


async def project(app: FastAPI, app_id: uuid.UUID, steps: list[tuple[uuid.UUID, Any]]) -> None:
    # project_many reads only the envelope's ids (and its type, for a log line).
    async with app.state.runtime.uow() as uow:
        await services.project_many(uow, [(rejection(app_id, job), step) for job, step in steps])
        await uow.commit()


async def test_the_one_statement_write_matches_the_rules_applied_one_by_one(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    # 60 jobs, each with its own order of every event kind (two starts, two endings), split
    # over two batches at a different point: the second batch meets live and ended rows.
    acme = await create_tenant(http)
    acme_id = uuid.UUID(acme["app"]["id"])
    orders = list(itertools.permutations(FOLD_STEPS.values()))[::15]
    no_provider = [FOLD_STEPS[name] for name in ("reserved", "started", "retried", "settled")]
    orders += list(itertools.permutations([*no_provider, FAILED_WITHOUT_PROVIDER]))[::10]
    jobs = await copies_of(app, await submit(http, acme["api_key"]), len(orders))
    cuts = [n % len(order) for n, order in enumerate(orders)]  # 0: all in the second batch
    plan = list(zip(jobs, orders, cuts, strict=True))
    first = [[(job, s) for s in order[:cut]] for job, order, cut in plan]
    second = [[(job, s) for s in order[cut:]] for job, order, cut in plan]
    # Each batch interleaves the jobs (as a topic's partitions do), each job's events in order.
    for batch in (first, second):
        await project(app, acme_id, [p for ps in itertools.zip_longest(*batch) for p in ps if p])

    found = await progress_rows(app)
    for job, order in zip(jobs, orders, strict=True):
        assert found[job] == one_by_one(JobProgress(), list(order)), order


async def test_concurrent_batches_on_the_same_jobs_lose_nothing(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    # Two topics' batches touch the same jobs at once, listing them in opposite orders: the
    # rows are locked in one order (no deadlock) and each batch sees the other's writes.
    acme = await create_tenant(http)
    acme_id = uuid.UUID(acme["app"]["id"])
    jobs = await copies_of(app, await submit(http, acme["api_key"]), 40)
    start, settle = FOLD_STEPS["started"], FOLD_STEPS["settled"]
    for _ in range(3):
        await asyncio.gather(
            project(app, acme_id, [(job, start) for job in jobs]),
            project(app, acme_id, [(job, settle) for job in reversed(jobs)]),
        )
    found = await progress_rows(app)
    expected = one_by_one(JobProgress(), [start, settle])
    assert all(found[job] == expected for job in jobs)
