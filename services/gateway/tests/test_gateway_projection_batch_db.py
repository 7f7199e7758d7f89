"""The read-model projection in batches (handlers/kafka.py, services.project_many) against the
real test database: events apply in delivery order, several per job, only to the event's own
app's job, and the registered batch handlers are the ones the consumer runs."""

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_contracts import RejectReason, TokensRejected
from genhub_contracts.events import TokensRejectedPayload
from genhub_gateway import services
from genhub_gateway.handlers import kafka as handlers

from .test_gateway_db import create_tenant, rows, saga_events, submit

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
