"""EventConsumer.on_batch: one unit of work per batch, bulk inbox, poison isolation.

The broker is FastStream's in-memory one; the units of work are real (PostgreSQL database
`genhub_platform_test`), so the inbox and the rollbacks are PostgreSQL's own.
"""

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from genhub_contracts import (
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    topics,
)
from genhub_contracts.events import JobCompletedPayload, JobRequestedPayload
from genhub_platform.db import SessionFactory, make_engine, make_session_factory
from genhub_platform.kafka import EventConsumer, record_first_deliveries
from genhub_platform.outbox import OutboxMessage
from genhub_platform.settings import PlatformSettings
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text
from sqlmodel import SQLModel


@pytest.fixture
async def sessions(platform_test_database: str) -> AsyncIterator[SessionFactory]:
    settings = PlatformSettings(service_name="platform_test")
    engine = make_engine(settings)
    tables = [OutboxMessage.__table__, SQLModel.metadata.tables["processed_events"]]
    async with engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all, tables=tables)
        await connection.execute(text("TRUNCATE outbox, processed_events"))
    yield make_session_factory(engine)
    await engine.dispose()


def _event(user: str = "u") -> JobRequested:
    spec = JobSpec(user_id=user, model="mock", input=GenerationInput(prompt="p"))
    return JobRequested.new(app_id=uuid4(), job_id=uuid4(), payload=JobRequestedPayload(spec=spec))


def _body(event: JobRequested) -> bytes:
    return event.model_dump_json().encode()


async def _outbox_event_ids(sessions: SessionFactory) -> list[UUID]:
    async with sessions() as session:
        rows = (await session.exec(text("SELECT payload FROM outbox ORDER BY id"))).all()  # type: ignore[call-overload]
    return [JobRequested.model_validate_json(row[0]).event_id for row in rows]


def _consumer(broker: KafkaBroker, sessions: SessionFactory) -> EventConsumer:
    return EventConsumer(
        broker, "billing", lambda: UnitOfWork(sessions, on_commit=lambda: None), max_attempts=2
    )


async def test_a_batch_is_one_unit_of_work_and_replays_apply_nothing(
    sessions: SessionFactory,
) -> None:
    broker = KafkaBroker()
    consumer = _consumer(broker, sessions)
    calls: list[list[UUID]] = []
    woken: list[int] = []

    @consumer.on_batch(JobRequested, name="reserve", after_commit=lambda: woken.append(1))
    async def reserve(events: list[JobRequested], uow: UnitOfWork) -> None:
        calls.append([e.event_id for e in events])
        for event in events:
            uow.publish(event)  # stands for the handler's writes: they commit with the inbox

    consumer.bind()
    batch = [_event(f"u{i}") for i in range(5)]
    async with TestKafkaBroker(broker) as test_broker:
        # One event twice in the same batch, then the whole batch redelivered.
        await test_broker.publish_batch(
            *[_body(e) for e in [*batch, batch[2]]], topic=topics.JOB_REQUESTED
        )
        await test_broker.publish_batch(*[_body(e) for e in batch], topic=topics.JOB_REQUESTED)

    assert calls == [[e.event_id for e in batch]]  # the redelivery reached no handler
    assert woken == [1]
    assert await _outbox_event_ids(sessions) == [e.event_id for e in batch]


async def test_a_poison_event_is_dead_lettered_alone(sessions: SessionFactory) -> None:
    broker = KafkaBroker()
    consumer = _consumer(broker, sessions)
    bad = _event("bad")
    dead: list[tuple[bytes, dict[str, str]]] = []
    attempts: list[int] = []

    @consumer.on_batch(JobRequested, name="reserve")
    async def reserve(events: list[JobRequested], uow: UnitOfWork) -> None:
        attempts.append(len(events))
        for event in events:
            uow.publish(event)
        if any(e.payload.spec.user_id == "bad" for e in events):
            raise ValueError("no price for this user")

    @broker.subscriber(topics.dlq(topics.JOB_REQUESTED))
    async def collect(message: KafkaMessage) -> None:
        dead.append((message.body, dict(message.headers)))

    consumer.bind()
    good = [_event("a"), _event("b")]
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish_batch(
            _body(good[0]), b'{"type": "job.requested"}', _body(bad), _body(good[1]),
            topic=topics.JOB_REQUESTED,
        )  # fmt: skip

    # Whole batch once (rolled back), then one by one: the bad event gets its two attempts.
    assert attempts == [3, 1, 1, 1, 1]
    assert await _outbox_event_ids(sessions) == [good[0].event_id, good[1].event_id]
    errors = [headers["dlq-error"].split(":")[0] for _, headers in dead]
    assert errors == ["ValidationError", "ValueError"]
    assert dead[1][0] == _body(bad)
    assert all(h["dlq-consumer"] == "billing.reserve" for _, h in dead)
    # The failed event is not marked processed: a fix and a replay would apply it.
    async with sessions() as session:
        assert await record_first_deliveries(session, "billing.reserve", [bad.event_id]) == {
            bad.event_id
        }


async def test_batch_and_single_routes_cannot_share_a_topic(sessions: SessionFactory) -> None:
    consumer = _consumer(KafkaBroker(), sessions)

    async def single(event: Any, uow: Any) -> None: ...

    async def many(events: Any, uow: Any) -> None: ...

    consumer.on(JobCompleted)(single)
    with pytest.raises(ValueError, match="already has a handler"):
        consumer.on_batch(JobCompleted)(many)
    consumer.on_batch(JobRequested)(many)
    with pytest.raises(ValueError, match="in batches"):
        consumer.on(JobRequested)(single)
    assert sorted(consumer.topics) == sorted([topics.JOB_COMPLETED, topics.JOB_REQUESTED])


def _record(
    topic: str, event: JobRequested | JobCompleted, offset: int
) -> ConsumerRecord[bytes, bytes]:
    body = event.model_dump_json().encode()
    return ConsumerRecord(topic, 0, offset, 0, 0, event.key, body, None, 16, len(body), [])


def _completed(job: JobRequested) -> JobCompleted:
    payload = JobCompletedPayload(user_id="u", status=JobStatus.SUCCEEDED, requested_outputs=1)
    return JobCompleted.new(app_id=job.app_id, job_id=job.job_id, payload=payload)


async def test_a_handler_of_several_topics_gets_their_mixed_batch_in_one_unit_of_work(
    sessions: SessionFactory,
) -> None:
    broker = KafkaBroker()
    consumer = EventConsumer(
        broker,
        "notifier",
        lambda: UnitOfWork(sessions, on_commit=lambda: None),
        max_attempts=1,
        topic_prefix="bench.",
    )
    calls: list[list[UUID]] = []

    @consumer.on_batch(JobRequested, JobCompleted, name="job_events")
    async def job_events(events: list[JobRequested | JobCompleted], uow: UnitOfWork) -> None:
        calls.append([e.event_id for e in events])
        for event in events:
            if isinstance(event, JobRequested):
                uow.publish(event)
            elif event.payload.user_id == "bad":
                raise ValueError("cannot complete")

    consumer.bind()
    (subscriber,) = broker.subscribers
    assert sorted(subscriber.topic_names) == ["bench.job.completed", "bench.job.requested"]
    dead: list[bytes] = []

    @broker.subscriber("bench." + topics.dlq(topics.JOB_COMPLETED))
    async def collect(message: KafkaMessage) -> None:
        dead.append(message.body)

    first, second = _event("a"), _event("b")
    first_done = _completed(first)
    records = [
        _record("bench.job.completed", first_done, 0),
        _record("bench.job.requested", first, 0),
        _record("bench.job.requested", second, 1),
    ]
    await consumer.apply_records(records)
    assert calls == [[first_done.event_id, first.event_id, second.event_id]]  # fetch order
    assert await _outbox_event_ids(sessions) == [first.event_id, second.event_id]

    # The same records again apply nothing; a failing event is isolated from the others.
    calls.clear()
    bad_job, third = _event("c"), _event("d")
    bad = JobCompleted.new(
        app_id=bad_job.app_id,
        job_id=bad_job.job_id,
        payload=JobCompletedPayload(user_id="bad", status=JobStatus.FAILED, requested_outputs=1),
    )
    async with TestKafkaBroker(broker):
        await consumer.apply_records(
            [
                *records,
                _record("bench.job.completed", bad, 1),
                _record("bench.job.requested", third, 2),
            ]
        )
    # The fresh pair together (rolled back), then each alone: the bad one dead-lettered.
    assert calls == [[bad.event_id, third.event_id], [bad.event_id], [third.event_id]]
    assert dead == [bad.model_dump_json().encode()]
    assert await _outbox_event_ids(sessions) == [first.event_id, second.event_id, third.event_id]


async def test_batch_routes_share_one_subscriber_and_keep_their_own_units_of_work(
    sessions: SessionFactory,
) -> None:
    broker = KafkaBroker()
    consumer = EventConsumer(
        broker, "gateway", lambda: UnitOfWork(sessions, on_commit=lambda: None), max_attempts=1
    )
    requested: list[list[UUID]] = []
    completed: list[list[UUID]] = []

    @consumer.on_batch(JobRequested, name="on_requested", max_records=100, timeout_ms=40)
    async def on_requested(events: list[JobRequested], uow: UnitOfWork) -> None:
        requested.append([e.event_id for e in events])

    @consumer.on_batch(JobCompleted, name="on_completed", max_records=300, timeout_ms=60)
    async def on_completed(events: list[JobCompleted], uow: UnitOfWork) -> None:
        completed.append([e.event_id for e in events])
        raise ValueError("this route fails; the other's batch stays applied")

    consumer.bind()
    # One consumer of both topics: an idle subscriber's fetches cost CPU every max_wait_ms.
    (subscriber,) = broker.subscribers
    assert sorted(subscriber.topic_names) == ["job.completed", "job.requested"]
    assert (subscriber.max_records, subscriber.batch_timeout_ms) == (300, 40)

    job = _event("a")
    done = _completed(job)
    async with TestKafkaBroker(broker):
        await consumer.apply_records(
            [_record("job.requested", job, 0), _record("job.completed", done, 0)]
        )
    assert requested == [[job.event_id]]
    assert completed == [[done.event_id]]  # tried once (max_attempts=1), then dead-lettered
    async with sessions() as session:
        inbox = (
            await session.exec(text("SELECT consumer, event_id FROM processed_events"))  # type: ignore[call-overload]
        ).all()
    assert [tuple(row) for row in inbox] == [("gateway.on_requested", job.event_id)]
