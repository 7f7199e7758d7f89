"""Direct Kafka access for tests that replay events exactly as a broker would redeliver them."""

import asyncio
import json
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


@dataclass(frozen=True)
class RawEvent:
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def body(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.value)
        return data


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
        return [p["partition"] for p in description["partitions"]]
    finally:
        await admin.close()


async def find_event(bootstrap: str, topic: str, job_id: str, *, timeout: float = 20.0) -> RawEvent:
    """Scan a job topic from the beginning for the event of this job (key = job id)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(bootstrap, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key == job_id.encode():
                        return RawEvent(
                            topic,
                            record.partition,
                            record.key,
                            record.value,
                            list(record.headers),
                        )
        raise AssertionError(f"no {topic} event for job {job_id}")
    finally:
        await consumer.stop()


async def redeliver(bootstrap: str, event: RawEvent) -> int:
    """Publish the same bytes again to the same partition; returns the new offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            event.topic,
            event.value,
            key=event.key,
            partition=event.partition,
            headers=event.headers,
        )
        return int(meta.offset)
    finally:
        await producer.stop()


async def wait_consumed(
    bootstrap: str, group: str, topic: str, partition: int, offset: int, *, timeout: float = 30.0
) -> None:
    """Wait until `group` has committed past `offset`: it has processed that message."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        tp = TopicPartition(topic, partition)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
            committed = offsets.get(tp)
            if committed is not None and committed.offset > offset:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"group {group} did not consume {topic}[{partition}]@{offset}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
