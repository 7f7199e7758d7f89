"""Kafka plumbing: the broker factory, the outbox's publisher, idempotent event consumers, topics.

Consumption is at least once: offsets are committed only after the handler's transaction
commits (FastStream's NACK_ON_ERROR policy rewinds on an unhandled error). A message that cannot
be decoded, or whose handler keeps failing on the same input, goes to `<topic>.dlq` with the
error attached, so one poison message never blocks its partition.

Hot topics can be consumed in batches (`EventConsumer.on_batch`): one unit of work per batch,
one inbox statement for the whole batch, the handler sees every fresh event at once (a handler
may take several topics: a batch spanning them is still one unit of work). A batch that fails
is retried event by event, so a poison message is still dead-lettered alone.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from genhub_contracts import Envelope, topics
from opentelemetry import trace
from prometheus_client import REGISTRY, Counter
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_platform import db
from genhub_platform.fetchpace import QUIET, FetchPace, FetchPacer, FetchTuning
from genhub_platform.settings import PlatformSettings
from genhub_platform.uow import UnitOfWork

log = logging.getLogger(__name__)

EventT = TypeVar("EventT", bound=Envelope[Any])
Handler = Callable[[EventT, UnitOfWork], Awaitable[None]]
BatchHandler = Callable[[list[EventT], UnitOfWork], Awaitable[None]]
# A batch handler of any event list (with several topics, a list of their union).
BatchHandlerT = TypeVar("BatchHandlerT", bound=Callable[[Any, UnitOfWork], Awaitable[None]])

DEAD_LETTERS = Counter(
    "genhub_dead_letters_total", "Messages sent to a dead-letter topic", ["topic", "consumer"]
)
DUPLICATES = Counter(
    "genhub_duplicate_events_total", "Events skipped because already applied", ["consumer"]
)

# Errors that say the infrastructure is unwell, not the message: retry by redelivery, never DLQ.
# (asyncpg's own for statements sent through `db.driver`: connection lost, server shutting down.)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    ConnectionError,
    TimeoutError,
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def make_broker(settings: PlatformSettings) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        enable_idempotence=True,  # no duplicates from producer retries
        acks="all",
        linger_ms=2,
        allow_auto_create_topics=False,
        middlewares=[
            KafkaTelemetryMiddleware(tracer_provider=trace.get_tracer_provider()),
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=settings.service_name),
        ],
        logger=logging.getLogger(f"genhub.{settings.service_name}.kafka"),
        log_level=logging.DEBUG,
    )


OUTBOX_PUBLISHED = Counter(
    "genhub_outbox_published_total", "Outbox rows sent to Kafka by the relay", ["topic"]
)


class BrokerPublisher:
    """The outbox relay's producer: sends without waiting, so a batch is one round of acks.

    `topic_prefix` namespaces every topic sent to (PlatformSettings.kafka_topic_prefix).
    `direct=True` hands each record straight to the broker's Kafka producer instead of going
    through FastStream's publish path: the rows already carry their trace context (captured
    when they were written), so the per-message publish span and metrics middleware are only
    overhead there; `genhub_outbox_published_total{topic}` counts what is sent. Before the
    broker is connected (or on a broker without one) it falls back to `broker.publish`.
    """

    def __init__(
        self, broker: KafkaBroker, *, topic_prefix: str = "", direct: bool = False
    ) -> None:
        self._broker = broker
        self._prefix = topic_prefix
        self._direct = direct
        self._counters: dict[str, Any] = {}

    def _producer(self) -> Any:
        state = getattr(getattr(self._broker, "_producer", None), "_producer", None)
        return getattr(state, "producer", None)

    async def send(
        self, topic: str, payload: bytes, key: bytes, headers: dict[str, str]
    ) -> "asyncio.Future[Any]":
        producer = self._producer() if self._direct else None
        if producer is None:
            return await self._broker.publish(
                payload, topic=self._prefix + topic, key=key, headers=headers, no_confirm=True
            )
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = OUTBOX_PUBLISHED.labels(topic)
        counter.inc()
        wire = [("content-type", b"application/octet-stream")]
        wire += [(name, value.encode()) for name, value in headers.items()]
        future: asyncio.Future[Any] = await producer.send(
            self._prefix + topic, value=payload, key=key, headers=wire
        )
        return future


async def _undecoded(message: KafkaMessage) -> KafkaMessage:
    """FastStream's decoder step, skipped: the handler gets the message itself.

    The consumers validate each record's bytes with the contract's pydantic model; FastStream's
    own decoding (a JSON parse per record, and for a batch a StreamMessage built per record)
    would be thrown away, and taking the message as the handler's argument instead of a
    `Context` dependency spares fast_depends a worker-thread hop per delivery.
    """
    return message


@dataclass(frozen=True)
class _Registration:
    event_cls: type[Envelope[Any]]
    handler: Handler[Any]
    name: str


@dataclass(frozen=True)
class _BatchRegistration:
    event_classes: dict[str, type[Envelope[Any]]]  # by contract topic
    handler: BatchHandler[Any]
    name: str
    max_records: int
    timeout_ms: int
    after_commit: Callable[[], None] | None


@dataclass(frozen=True)
class _BatchItem:
    """One decoded record of a fetched batch and the route it belongs to."""

    route: _BatchRegistration
    topic: str  # the contract topic (no prefix)
    record: Any
    event: Envelope[Any]


_INBOX_MANY_SQL = (
    "INSERT INTO processed_events (consumer, event_id)"
    " SELECT $1, id FROM unnest(CAST($2 AS uuid[])) AS id"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)


async def record_first_deliveries(
    session: AsyncSession, consumer: str, event_ids: Iterable[UUID]
) -> set[UUID]:
    """Inbox check for many events in one statement: the ids this consumer had not seen."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    return {row[0] for row in await db.fetch(session, _INBOX_MANY_SQL, consumer, ids)}


class EventConsumer:
    """Registers handlers `async def handler(event, uow)` for contract events.

    Each delivery runs in its own unit of work: the inbox check, the handler's changes and any
    events it publishes commit together, then the offset is committed. With a `topic_prefix`
    the consumer subscribes to (and dead-letters into) the prefixed topics in a prefixed group
    (its own members, no rebalance of the unprefixed group); handlers are still registered by
    contract topic and keep their inbox names.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        group_id: str,
        uow_factory: Callable[[], UnitOfWork],
        *,
        max_attempts: int = 3,
        topic_prefix: str = "",
        fetch: FetchTuning = FetchTuning(),
        busy_from_per_s: float = 0.0,
    ) -> None:
        self._broker = broker
        self._fetch = fetch
        self._busy_from_per_s = busy_from_per_s
        self.pacer: FetchPacer | None = None
        self._group_id = group_id
        self._uow_factory = uow_factory
        self._max_attempts = max_attempts
        self._prefix = topic_prefix
        self._routes: dict[str, list[_Registration]] = {}
        self._batch_routes: dict[str, _BatchRegistration] = {}
        self._bound = False

    @property
    def topics(self) -> list[str]:
        return [*self._routes, *self._batch_routes]

    def on(
        self, event_cls: type[EventT], *, name: str | None = None
    ) -> Callable[[Handler[EventT]], Handler[EventT]]:
        def register(handler: Handler[EventT]) -> Handler[EventT]:
            if self._bound:
                raise RuntimeError("register handlers before the broker starts")
            if event_cls.TOPIC in self._batch_routes:
                raise ValueError(f"{event_cls.TOPIC} is already consumed in batches")
            registration = _Registration(
                event_cls, handler, f"{self._group_id}.{name or handler.__name__}"
            )
            self._routes.setdefault(event_cls.TOPIC, []).append(registration)
            return handler

        return register

    def on_batch(
        self,
        *event_classes: type[Envelope[Any]],
        name: str | None = None,
        max_records: int = 500,
        timeout_ms: int = 25,
        after_commit: Callable[[], None] | None = None,
    ) -> Callable[[BatchHandlerT], BatchHandlerT]:
        """Register `async def handler(events, uow)` for topics consumed in batches.

        Up to `max_records` messages (whatever the fetches brought; a poll waits up to
        `timeout_ms` for the first, and after an empty poll FastStream sleeps as long again, so
        a short timeout spins an idle consumer) are applied in one unit of work: the inbox is
        checked for all of them at once and the handler gets only the events this consumer has
        not applied before, in delivery order. With several event classes, a batch may mix
        them (order is kept within a partition, not across topics).
        Every batch route's topics are fetched by one subscriber per consumer, and a fetched
        batch is split by route, one unit of work each (max_records is the routes' largest,
        timeout_ms their shortest). `after_commit` runs after each committed batch (e.g. to
        wake an outbox relay for rows the handler inserted in bulk).
        One batch handler per topic, and a batch topic has no other route.
        """
        if not event_classes:
            raise ValueError("on_batch needs at least one event class")
        if max_records < 1 or timeout_ms < 0:
            raise ValueError("max_records must be >= 1 and timeout_ms >= 0")

        def register(handler: BatchHandlerT) -> BatchHandlerT:
            if self._bound:
                raise RuntimeError("register handlers before the broker starts")
            by_topic: dict[str, type[Envelope[Any]]] = {cls.TOPIC: cls for cls in event_classes}
            for topic in by_topic:
                if topic in self._routes or topic in self._batch_routes:
                    raise ValueError(f"{topic} already has a handler")
            registration = _BatchRegistration(
                by_topic,
                handler,
                f"{self._group_id}.{name or handler.__name__}",
                max_records,
                timeout_ms,
                after_commit,
            )
            for topic in by_topic:
                self._batch_routes[topic] = registration
            return handler

        return register

    def bind(self) -> None:
        """Subscribe once to every registered topic.

        One subscriber means one group member per process, so start-up costs one rebalance
        rather than one per topic.
        """
        if self._bound:
            return
        if self._batch_routes:
            self._bind_batches(list({id(r): r for r in self._batch_routes.values()}.values()))
        self._bound = True
        if not self._routes:
            return

        async def consume(message: Any) -> None:  # a KafkaMessage: see `_undecoded`
            topic = message.raw_message.topic
            topic = topic.removeprefix(self._prefix)
            for route in self._routes.get(topic, ()):
                try:
                    event = route.event_cls.model_validate_json(message.body)
                except ValidationError as exc:
                    await self._dead_letter(topic, route.name, message, exc)
                    continue
                await self._apply(route.name, topic, route.handler, event, message)

        consume.__name__ = f"{self._group_id}_events"
        self._broker.subscriber(
            *(self._prefix + topic for topic in self._routes),
            group_id=self._prefix + self._group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            decoder=_undecoded,
        )(consume)

    def _bind_batches(self, routes: list[_BatchRegistration]) -> None:
        """One batch subscriber (same group) for every batch route's topics, so the other
        topics keep their path. One, not one per route: each subscriber is a consumer whose
        fetches the broker answers at least every `max_wait_ms` even when idle, and a fetched
        batch is split by route anyway (`apply_records`). With `busy_from_per_s`, it fetches at
        `fetch` only while that busy (fetchpace.py), at the first byte otherwise."""
        paced = self._busy_from_per_s > 0
        tuning = QUIET if paced else self._fetch

        async def consume_batch(message: Any) -> None:  # a KafkaMessage: see `_undecoded`
            raw = message.raw_message
            records = raw if isinstance(raw, tuple | list) else (raw,)
            if self.pacer is not None:
                self.pacer.received(len(records))
            await self.apply_records(records)

        consume_batch.__name__ = f"{self._group_id}_batches"
        subscriber = self._broker.subscriber(
            *(self._prefix + topic for route in routes for topic in route.event_classes),
            group_id=self._prefix + self._group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            batch=True,
            max_records=max(route.max_records for route in routes),
            batch_timeout_ms=min(route.timeout_ms for route in routes),
            fetch_min_bytes=tuning.min_bytes,
            fetch_max_wait_ms=tuning.max_wait_ms,
            decoder=_undecoded,
        )
        subscriber(consume_batch)
        if paced:
            pace = FetchPace(self._fetch, busy_from_per_s=self._busy_from_per_s)
            self.pacer = FetchPacer(
                pace, lambda: getattr(subscriber, "consumer", None), name=self._group_id
            )

    async def apply_records(self, records: Iterable[Any]) -> None:
        """Apply one fetched batch of Kafka records (`topic`, `value`, `key`, `headers`):
        each handler's fresh events in one unit of work; an undecodable record is
        dead-lettered on its own."""
        by_route: dict[int, list[_BatchItem]] = {}
        for record in records:
            topic = record.topic.removeprefix(self._prefix)
            route = self._batch_routes[topic]
            try:
                event = route.event_classes[topic].model_validate_json(record.value)
            except ValidationError as exc:
                await self._dead_letter_record(topic, route.name, record, exc)
                continue
            by_route.setdefault(id(route), []).append(_BatchItem(route, topic, record, event))
        for items in by_route.values():
            await self._apply_batch(items)

    async def _apply_batch(self, items: list[_BatchItem]) -> None:
        """Apply one handler's batch in one unit of work; if it fails, event by event."""
        route = items[0].route
        unique: dict[UUID, _BatchItem] = {}
        for item in items:
            unique.setdefault(item.event.event_id, item)
        items = list(unique.values())
        attempts = self._max_attempts if len(items) == 1 else 1
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                async with self._uow_factory() as uow:
                    fresh = await record_first_deliveries(uow.session, route.name, unique)
                    events = [item.event for item in items if item.event.event_id in fresh]
                    if skipped := len(items) - len(events):
                        DUPLICATES.labels(route.name).inc(skipped)
                        log.info("%d duplicate event(s) skipped by %s", skipped, route.name)
                    if events:
                        await route.handler(events, uow)
                    await uow.commit()
                if route.after_commit is not None and events:
                    route.after_commit()
                return
            except TRANSIENT_ERRORS:
                log.warning("transient failure in %s; will redeliver", route.name, exc_info=True)
                await asyncio.sleep(min(2.0, 0.2 * attempt))
                raise
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    await asyncio.sleep(0.5)
                    raise
                last_error = exc
            except Exception as exc:
                last_error = exc
            log.warning(
                "batch handler %s failed on %d event(s) (attempt %d/%d)",
                route.name,
                len(items),
                attempt,
                attempts,
                exc_info=last_error,
            )
            await asyncio.sleep(0.05 * 2**attempt)
        assert last_error is not None
        if len(items) > 1:
            # One bad event must not sink the others: isolate it.
            for item in items:
                await self._apply_batch([item])
            return
        item = items[0]
        await self._dead_letter_record(item.topic, route.name, item.record, last_error)

    async def _apply(
        self,
        consumer_name: str,
        topic: str,
        handler: Handler[EventT],
        event: EventT,
        message: Any,
    ) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                async with self._uow_factory() as uow:
                    if not await uow.first_delivery(consumer_name, event.event_id):
                        DUPLICATES.labels(consumer_name).inc()
                        log.info("duplicate event skipped", extra={"event_id": str(event.event_id)})
                        return
                    await handler(event, uow)
                    await uow.commit()
                return
            except TRANSIENT_ERRORS:
                # Infrastructure trouble: back off, then let Kafka redeliver (NACK).
                log.warning("transient failure in %s; will redeliver", consumer_name, exc_info=True)
                await asyncio.sleep(min(2.0, 0.2 * attempt))
                raise
            except DBAPIError as exc:
                if exc.connection_invalidated:
                    await asyncio.sleep(0.5)
                    raise
                last_error: Exception = exc
            except Exception as exc:
                last_error = exc
            log.warning(
                "handler %s failed (attempt %d/%d)",
                consumer_name,
                attempt,
                self._max_attempts,
                exc_info=last_error,
            )
            await asyncio.sleep(0.05 * 2**attempt)
        await self._dead_letter(topic, consumer_name, message, last_error)

    async def _dead_letter_record(
        self, topic: str, consumer_name: str, record: Any, error: Exception
    ) -> None:
        """Dead-letter one raw consumer record of a batch (headers are byte pairs there)."""
        headers: dict[str, str] = {}
        for key, value in getattr(record, "headers", None) or ():
            with contextlib.suppress(UnicodeDecodeError, AttributeError):
                headers[key] = value.decode()
        await self._send_dead_letter(
            topic, consumer_name, record.value or b"", getattr(record, "key", None), headers, error
        )

    async def _dead_letter(
        self, topic: str, consumer_name: str, message: Any, error: Exception
    ) -> None:
        headers = {k: v for k, v in (message.headers or {}).items() if isinstance(v, str)}
        raw = message.raw_message
        await self._send_dead_letter(
            topic, consumer_name, message.body, getattr(raw, "key", None), headers, error
        )

    async def _send_dead_letter(
        self,
        topic: str,
        consumer_name: str,
        body: bytes,
        key: bytes | None,
        headers: dict[str, str],
        error: Exception,
    ) -> None:
        DEAD_LETTERS.labels(topic, consumer_name).inc()
        log.error("dead-lettering message from %s: %s", topic, error)
        headers.update(
            {
                "dlq-error": f"{type(error).__name__}: {error}"[:1000],
                "dlq-consumer": consumer_name,
                "dlq-source-topic": topic,
            }
        )
        await self._broker.publish(
            body, topic=self._prefix + topics.dlq(topic), key=key, headers=headers
        )


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str] = topics.ALL_TOPICS_WITH_DLQ,
    *,
    partitions: int = 6,
    replication_factor: int = 1,
    prefix: str = "",
) -> None:
    """Create any missing topics (each name with `prefix`); existing ones are left as they are."""
    names = [prefix + name for name in names]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
            for name in names
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
                await admin.create_topics(missing)
    finally:
        await admin.close()
