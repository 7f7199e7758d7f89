"""Outbox, inbox and unit of work against the real local PostgreSQL."""

import asyncio
import os
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from genhub_contracts import GenerationInput, JobRequested, JobSpec
from genhub_contracts.events import JobRequestedPayload
from genhub_platform.db import make_engine, make_session_factory
from genhub_platform.kafka import OUTBOX_PUBLISHED, BrokerPublisher
from genhub_platform.outbox import OutboxMessage, OutboxRelay
from genhub_platform.settings import PlatformSettings
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text
from sqlmodel import SQLModel, select

TEST_DB = "genhub_platform_test"


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(
        self, topic: str, payload: bytes, key: bytes, headers: dict[str, str]
    ) -> "asyncio.Future[Any]":
        self.sent.append((topic, key, payload))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@pytest.fixture(scope="module")
async def sessions() -> AsyncIterator[Any]:
    settings = PlatformSettings(service_name="platform_test")
    admin_dsn = (
        f"postgresql://{settings.pguser}:{settings.pgpassword.get_secret_value()}"
        f"@{settings.pghost}:{settings.pgport}/postgres"
    )
    conn = await asyncpg.connect(os.environ.get("PLATFORM_TEST_ADMIN_DSN", admin_dsn))
    if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", TEST_DB):
        await conn.execute(f'CREATE DATABASE "{TEST_DB}"')
    await conn.close()
    engine = make_engine(settings)
    async with engine.begin() as connection:
        tables = [OutboxMessage.__table__, SQLModel.metadata.tables["processed_events"]]
        await connection.run_sync(SQLModel.metadata.drop_all, tables=tables)
        await connection.run_sync(SQLModel.metadata.create_all, tables=tables)
    yield make_session_factory(engine)
    await engine.dispose()


def _event() -> JobRequested:
    spec = JobSpec(user_id="u", model="mock", input=GenerationInput(prompt="p"))
    return JobRequested.new(app_id=uuid4(), job_id=uuid4(), payload=JobRequestedPayload(spec=spec))


async def _unpublished(sessions: Any) -> int:
    async with sessions() as session:
        result = await session.exec(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        return int(result.scalar_one())


async def test_events_are_written_only_when_the_unit_of_work_commits(sessions: Any) -> None:
    woken: list[bool] = []
    before = await _unpublished(sessions)
    async with UnitOfWork(sessions, on_commit=lambda: woken.append(True)) as uow:
        uow.publish(_event())
        # no commit: leaving the block rolls back
    assert await _unpublished(sessions) == before
    assert woken == []

    async with UnitOfWork(sessions, on_commit=lambda: woken.append(True)) as uow:
        uow.publish(_event())
        await uow.commit()
    assert await _unpublished(sessions) == before + 1
    assert woken == [True]


async def test_relay_publishes_in_order_and_marks_rows(sessions: Any) -> None:
    publisher = RecordingPublisher()
    relay = OutboxRelay(sessions, publisher, batch_size=1000)
    await relay.publish_pending()  # drain rows of earlier tests
    publisher.sent.clear()

    events = [_event() for _ in range(5)]
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        for event in events:
            uow.publish(event)
        await uow.commit()

    assert await relay.publish_pending() == 5
    assert [key for _, key, _ in publisher.sent] == [e.key for e in events]
    assert all(topic == "job.requested" for topic, _, _ in publisher.sent)
    assert await relay.publish_pending() == 0
    assert await _unpublished(sessions) == 0


async def test_concurrent_relays_publish_each_row_once(sessions: Any) -> None:
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        for _ in range(200):
            uow.publish(_event())
        await uow.commit()
    publisher = RecordingPublisher()
    relays = [OutboxRelay(sessions, publisher, batch_size=20) for _ in range(4)]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.publish_pending():
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    payloads = [payload for _, _, payload in publisher.sent]
    assert len(payloads) == 200
    assert len(set(payloads)) == 200


async def test_a_commit_during_a_relay_pass_is_published_without_waiting_for_the_poll(
    sessions: Any,
) -> None:
    relay: OutboxRelay

    class CommittingPublisher(RecordingPublisher):
        """While the relay sends the first row, another unit of work commits and wakes it."""

        async def send(
            self, topic: str, payload: bytes, key: bytes, headers: dict[str, str]
        ) -> "asyncio.Future[Any]":
            if not self.sent:
                async with UnitOfWork(sessions, on_commit=relay.wake) as uow:
                    uow.publish(late)
                    await uow.commit()
            return await super().send(topic, payload, key, headers)

    publisher = CommittingPublisher()
    relay = OutboxRelay(sessions, publisher, batch_size=1000, poll_interval_s=30)
    await relay.publish_pending()  # drain rows of earlier tests
    publisher.sent.clear()
    first, late = _event(), _event()
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        uow.publish(first)
        await uow.commit()

    task = asyncio.create_task(relay.run_forever())
    try:
        async with asyncio.timeout(5):  # far below the 30 s poll interval
            while len(publisher.sent) < 2:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert [key for _, key, _ in publisher.sent] == [first.key, late.key]


async def test_inbox_applies_an_event_once_per_consumer(sessions: Any) -> None:
    event_id = uuid4()
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        assert await uow.first_delivery("billing.reserve", event_id)
        await uow.commit()
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        assert not await uow.first_delivery("billing.reserve", event_id)
        assert await uow.first_delivery("notifier.record", event_id)
        await uow.commit()
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage).limit(0))).all()
        assert rows == []


async def test_events_are_inserted_by_any_commit_of_the_session_and_dropped_on_rollback(
    sessions: Any,
) -> None:
    before = await _unpublished(sessions)
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        uow.publish(_event())
        await uow.session.rollback()  # what was queued before a rollback is gone
        await uow.session.commit()
    assert await _unpublished(sessions) == before
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        uow.publish(_event())
        uow.publish(_event())
        await uow.session.commit()  # a repository committing the session directly
    assert await _unpublished(sessions) == before + 2


async def test_the_relay_sends_each_rows_headers(sessions: Any) -> None:
    class HeaderRecorder(RecordingPublisher):
        headers: list[dict[str, str]] = []

        async def send(
            self, topic: str, payload: bytes, key: bytes, headers: dict[str, str]
        ) -> "asyncio.Future[Any]":
            self.headers.append(headers)
            return await super().send(topic, payload, key, headers)

    relay = OutboxRelay(sessions, HeaderRecorder(), batch_size=1000)
    await relay.publish_pending()
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        uow.publish(_event())
        await uow.commit()
    publisher = HeaderRecorder()
    publisher.headers = []
    assert await OutboxRelay(sessions, publisher).publish_pending() == 1
    assert publisher.headers == [{"event-type": "job.requested"}]


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []

    async def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> "asyncio.Future[Any]":
        self.sent.append((topic, value, key, headers))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_the_direct_broker_publisher_sends_to_the_prefixed_topic() -> None:
    producer = _FakeProducer()
    state = SimpleNamespace(producer=producer)  # FastStream's producer state holds aiokafka's
    broker = SimpleNamespace(_producer=SimpleNamespace(_producer=state))
    publisher = BrokerPublisher(broker, topic_prefix="bench.", direct=True)  # type: ignore[arg-type]
    before = OUTBOX_PUBLISHED.labels("job.requested")._value.get()
    await (await publisher.send("job.requested", b"{}", b"k", {"event-type": "job.requested"}))
    assert producer.sent == [
        (
            "bench.job.requested",
            b"{}",
            b"k",
            [("content-type", b"application/octet-stream"), ("event-type", b"job.requested")],
        )
    ]
    assert OUTBOX_PUBLISHED.labels("job.requested")._value.get() == before + 1
