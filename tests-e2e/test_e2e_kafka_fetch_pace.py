"""The platform's fetch pacer against the real broker: the fetches an aiokafka consumer sends
follow the pace it sets (quiet: an idle fetch every 500 ms; busy: every 25 ms).

The pacer changes two attributes aiokafka reads when it builds each fetch request (fetchpace.py);
this test is what fails should an aiokafka upgrade stop reading them.
"""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from e2e_support import Endpoints
from genhub_platform.fetchpace import FetchPace, FetchPacer, FetchTuning

BUSY = FetchTuning(min_bytes=16384, max_wait_ms=25)


@pytest.fixture
async def topic(endpoints: Endpoints) -> AsyncIterator[str]:
    name = f"e2e-pace-{secrets.token_hex(4)}"
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


def _count_fetches(consumer: AIOKafkaConsumer) -> list[float]:
    """When each fetch request was sent (a spy on the consumer's client)."""
    sent: list[float] = []
    client: Any = consumer._client
    send = client.send

    async def counting_send(node_id: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        if type(request).__name__.startswith("FetchRequest"):
            sent.append(time.monotonic())
        return await send(node_id, request, *args, **kwargs)

    client.send = counting_send
    return sent


def _between(sent: list[float], start: float, end: float) -> int:
    return sum(1 for at in sent if start <= at < end)


async def test_fetches_follow_the_pace_quiet_busy_and_quiet_again(
    endpoints: Endpoints, topic: str
) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=endpoints.kafka,
        enable_auto_commit=False,
        fetch_min_bytes=1,
        fetch_max_wait_ms=500,  # what a paced consumer is created with (QUIET)
    )
    await consumer.start()
    pacer = FetchPacer(
        FetchPace(BUSY, busy_from_per_s=100, window_s=0.5), lambda: consumer, name="e2e-pace"
    )
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        sent = _count_fetches(consumer)

        # A record on the quiet topic arrives at once (the broker answers at the first byte).
        producer = AIOKafkaProducer(bootstrap_servers=endpoints.kafka)
        await producer.start()
        try:
            await asyncio.sleep(0.2)
            await producer.send_and_wait(topic, b"first")
            got = await consumer.getmany(partition, timeout_ms=5000)
        finally:
            await producer.stop()
        assert [r.value for r in got.get(partition, [])] == [b"first"]

        # Quiet and idle: about two fetches a second.
        start = time.monotonic()
        await asyncio.sleep(1.0)
        quiet = _between(sent, start, time.monotonic())
        assert quiet <= 4, f"quiet: {quiet} fetches in 1 s"

        # Busy (kept so by what the consumer is told it received): a fetch every 25 ms, after
        # the quiet one in flight comes back.
        pacer.received(100)
        start = time.monotonic()
        for _ in range(4):
            await asyncio.sleep(0.25)
            pacer.received(100)
        busy = _between(sent, start, time.monotonic())
        assert busy >= 12, f"busy: {busy} fetches in 1 s"

        # Nothing more received: quiet again once a whole window had nothing (the last one
        # counted may still be full), and its fetches slow down.
        await asyncio.sleep(1.1)
        assert pacer.tuning.max_wait_ms == 500
        start = time.monotonic()
        await asyncio.sleep(1.0)
        quiet_again = _between(sent, start, time.monotonic())
        assert quiet_again <= 4, f"quiet again: {quiet_again} fetches in 1 s"
    finally:
        pacer.close()
        await consumer.stop()
