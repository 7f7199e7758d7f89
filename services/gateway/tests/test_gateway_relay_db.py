"""The gateway's outbox relay (adapters/relay.py) against the real test database: it publishes
what the accept path wrote, in id order, with the row's headers, and marks the rows."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_contracts import JobRequested, parse_event
from genhub_gateway.adapters.relay import PgOutboxRelay

from .test_gateway_db import create_tenant, rows, submit

pytestmark = pytest.mark.usefixtures("clean_db")


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, dict[str, str]]] = []

    async def send(
        self, topic: str, payload: bytes, key: bytes, headers: dict[str, str]
    ) -> "asyncio.Future[Any]":
        self.sent.append((topic, payload, key, headers))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_relay_publishes_accepted_jobs_in_order_and_marks_them(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(http, plan="pro")
    job_ids = [await submit(http, created["api_key"], user=f"u{i}") for i in range(3)]
    publisher = RecordingPublisher()
    relay = PgOutboxRelay(
        app.state.gateway.pool, app.state.runtime.sessions, publisher, batch_size=2
    )

    assert await relay.publish_pending() == 2  # one batch at a time
    assert await relay.publish_pending() == 1
    assert await relay.publish_pending() == 0

    sent_jobs = []
    for topic, payload, key, headers in publisher.sent:
        event = parse_event(payload)
        assert isinstance(event, JobRequested)
        assert (topic, headers["event-type"]) == ("job.requested", "job.requested")
        assert key == str(event.job_id).encode()
        sent_jobs.append(str(event.job_id))
    assert sent_jobs == job_ids
    stored = await rows(app, "SELECT headers::text, published_at FROM outbox ORDER BY id")
    assert [json.loads(h) for h, _ in stored] == [h for *_, h in publisher.sent]
    assert all(published_at is not None for _, published_at in stored)


async def test_the_app_runs_the_asyncpg_relay(app: FastAPI) -> None:
    assert isinstance(app.state.runtime.relay, PgOutboxRelay)


async def test_relay_lingers_only_after_a_small_batch(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(http, plan="pro")
    publisher = RecordingPublisher()
    relay = PgOutboxRelay(
        app.state.gateway.pool,
        app.state.runtime.sessions,
        publisher,
        linger_s=0.3,
        linger_below=10,
    )
    loop = asyncio.get_running_loop()
    await submit(http, created["api_key"], user="u1")
    began = loop.time()
    assert await relay.publish_pending() == 1  # after an idle spell: at once
    assert loop.time() - began < 0.25
    await submit(http, created["api_key"], user="u2")
    began = loop.time()
    assert await relay.publish_pending() == 1  # the last pass published a few: it lingered
    assert loop.time() - began >= 0.3
    began = loop.time()
    assert await relay.publish_pending() == 0  # nothing left (it lingered once more)
    assert loop.time() - began >= 0.3
    began = loop.time()
    assert await relay.publish_pending() == 0  # nothing was published just before: no wait
    assert loop.time() - began < 0.25
