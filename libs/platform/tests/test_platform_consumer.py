"""EventConsumer: inbox de-duplication, retries and dead letters (in-memory broker)."""

from typing import Any
from uuid import UUID, uuid4

from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from genhub_contracts import GenerationInput, JobRequested, JobSpec, topics
from genhub_contracts.events import JobRequestedPayload
from genhub_platform.kafka import EventConsumer


class FakeUnitOfWork:
    """Records what a handler's unit of work saw; the inbox is a shared set."""

    def __init__(self, seen: set[tuple[str, UUID]], commits: list[str]) -> None:
        self._seen = seen
        self._commits = commits

    async def __aenter__(self) -> "FakeUnitOfWork":
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def first_delivery(self, consumer: str, event_id: UUID) -> bool:
        if (consumer, event_id) in self._seen:
            return False
        self._pending = (consumer, event_id)
        return True

    async def commit(self) -> None:
        self._seen.add(self._pending)
        self._commits.append(self._pending[0])


def _event() -> JobRequested:
    spec = JobSpec(user_id="u", model="mock", input=GenerationInput(prompt="p"))
    return JobRequested.new(app_id=uuid4(), job_id=uuid4(), payload=JobRequestedPayload(spec=spec))


def _consumer(broker: KafkaBroker) -> tuple[EventConsumer, set[tuple[str, UUID]], list[str]]:
    seen: set[tuple[str, UUID]] = set()
    commits: list[str] = []
    consumer = EventConsumer(
        broker,
        "billing",
        lambda: FakeUnitOfWork(seen, commits),
        max_attempts=2,  # type: ignore[arg-type,return-value]
    )
    return consumer, seen, commits


async def test_an_event_delivered_twice_is_applied_once() -> None:
    broker = KafkaBroker()
    consumer, _, commits = _consumer(broker)
    applied: list[UUID] = []

    @consumer.on(JobRequested)
    async def reserve(event: JobRequested, uow: Any) -> None:
        applied.append(event.event_id)

    consumer.bind()
    event = _event()
    async with TestKafkaBroker(broker) as test_broker:
        for _ in range(2):
            await test_broker.publish(event.model_dump_json().encode(), topic=topics.JOB_REQUESTED)
    assert applied == [event.event_id]
    assert commits == ["billing.reserve"]


async def test_poison_and_failing_messages_go_to_the_dead_letter_topic() -> None:
    broker = KafkaBroker()
    consumer, _, commits = _consumer(broker)
    calls: list[int] = []
    dead: list[tuple[bytes, dict[str, str]]] = []

    @consumer.on(JobRequested)
    async def reserve(event: JobRequested, uow: Any) -> None:
        calls.append(1)
        raise ValueError("price rule missing")

    @broker.subscriber(topics.dlq(topics.JOB_REQUESTED))
    async def collect(message: KafkaMessage) -> None:
        dead.append((message.body, dict(message.headers)))

    consumer.bind()
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(b'{"type": "job.requested"}', topic=topics.JOB_REQUESTED)
        await test_broker.publish(_event().model_dump_json().encode(), topic=topics.JOB_REQUESTED)

    assert len(calls) == 2  # max_attempts, then dead-lettered
    assert commits == []
    assert [headers["dlq-error"].split(":")[0] for _, headers in dead] == [
        "ValidationError",
        "ValueError",
    ]
    assert all(h["dlq-source-topic"] == "job.requested" for _, h in dead)


async def test_a_topic_prefix_namespaces_subscriptions_and_dead_letters() -> None:
    broker = KafkaBroker()
    seen: set[tuple[str, UUID]] = set()
    commits: list[str] = []
    consumer = EventConsumer(
        broker,
        "billing",
        lambda: FakeUnitOfWork(seen, commits),  # type: ignore[arg-type,return-value]
        max_attempts=1,
        topic_prefix="bench.",
    )
    applied: list[UUID] = []
    dead: list[bytes] = []

    @consumer.on(JobRequested)
    async def reserve(event: JobRequested, uow: Any) -> None:
        applied.append(event.event_id)

    @broker.subscriber("bench." + topics.dlq(topics.JOB_REQUESTED))
    async def collect(message: KafkaMessage) -> None:
        dead.append(message.body)

    consumer.bind()
    event = _event()
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(event.model_dump_json().encode(), topic="bench.job.requested")
        await test_broker.publish(b"not json", topic="bench.job.requested")
    assert applied == [event.event_id]
    assert commits == ["billing.reserve"]  # inbox names keep the unprefixed group
    assert dead == [b"not json"]
