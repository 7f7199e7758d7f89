"""Dispatch overhead of one orchestrator process: tokens.reserved → job.generated, mock at 0 ms.

    uv run --no-sync python deploy/bench/bench_orchestrator.py [--jobs 3000] [--apps 300]
        [--concurrency 128] [--rate 0] [--warmup 200] [--keep]

End to end through real infrastructure, nothing bypassed:
- the benchmark starts ONE real orchestrator process (`genhub-orchestrator serve`, the same
  entry point as the stack) on port 18082 with its own database `genhub_orchestrator_bench`
  (created, migrated, its run tables emptied) and its own Kafka topics: every topic it
  consumes, publishes and creates carries the prefix `bench-orch.` (KAFKA_TOPIC_PREFIX), so it
  neither takes the stack's jobs nor feeds the stack's storage/billing with bench jobs;
- the built-in mock provider answers at 0 ms (ORCHESTRATOR_MOCK_LATENCY_MS=0, 64x64 PNGs);
  outputs are staged in real MinIO (bucket `genhub-bench-staging`, emptied afterwards);
- the benchmark produces `tokens.reserved` events to Kafka (aiokafka, serialized up front,
  the send time stamped on the record) and reads `job.generated` / `job.completed` back from
  Kafka as the process's outbox relay publishes them.

Latency per job: the job.generated record's timestamp (set when the relay sent it) minus the
tokens.reserved record's timestamp (set when the benchmark sent it): p50/p95/p99. Throughput:
jobs / (last job.generated - first tokens.reserved). A burst (the default) measures
throughput, its latency is mostly queueing; `--rate` paces arrivals so the latency is the
path's own. CPU per job: utime+stime of the orchestrator process (/proc/<pid>/stat) over the
measured window / jobs. SQL statements per job: the process's `genhub_db_statements_total`
(every statement it sent, relay included) over the window / jobs. Checks: every job gets
exactly one job.generated, no job.completed, every run row `generated`, staged objects exist.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from uuid import UUID, uuid4

import asyncpg
import bench_support as bench
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from genhub_contracts import TokensReserved, topics
from genhub_contracts.events import TokensReservedPayload
from genhub_platform.objectstore import ObjectStoreSettings
from minio import Minio
from minio.deleteobjects import DeleteObject

PREFIX = "bench-orch."
DB = "genhub_orchestrator_bench"
BUCKET = "genhub-bench-staging"
PORT = 18082


def reserved(app_id: UUID, i: int, tag: str) -> TokensReserved:
    spec = {
        "user_id": f"u{i % 50}",
        "model": "mock",
        "plan": "enterprise",
        "cache": False,  # every job goes to the provider: the dispatch path is measured
        "input": {"prompt": f"bench {tag} job {i}", "seed": i, "width": 64, "height": 64},
    }
    return TokensReserved.new(
        app_id=app_id,
        job_id=uuid4(),
        payload=TokensReservedPayload.model_validate(
            {"spec": spec, "hold_id": str(uuid4()), "amount": 10}
        ),
    )


def orchestrator_process(concurrency: int) -> bench.ServiceProcess:
    return bench.ServiceProcess(
        "orchestrator",
        PORT,
        {
            "ORCHESTRATOR_DATABASE_URL": f"{bench.PG}/{DB}",
            "KAFKA_TOPIC_PREFIX": PREFIX,
            "ORCHESTRATOR_MOCK_LATENCY_MS": "0",
            "ORCHESTRATOR_MAX_CONCURRENCY": str(concurrency),
            "S3_BUCKET": BUCKET,
            "LOG_LEVEL": "WARNING",
            "GENHUB_ENV": "local",
        },
        bench.ROOT / "var/log/bench-orchestrator.log",
    )


class Collector:
    """Reads the bench's job.generated / job.completed from the end of their topics."""

    def __init__(self) -> None:
        self.generated: dict[UUID, list[int]] = {}
        self.completed: dict[UUID, str] = {}
        self.arrived = asyncio.Event()
        self.expected: set[UUID] = set()
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bench.KAFKA, enable_auto_commit=False)
        self._task: asyncio.Task[None] | None = None

    async def start(self, producer: AIOKafkaProducer) -> None:
        await self._consumer.start()
        parts = []
        for topic in (PREFIX + topics.JOB_GENERATED, PREFIX + topics.JOB_COMPLETED):
            for p in await producer.partitions_for(topic):  # waits for the topic's metadata
                parts.append(TopicPartition(topic, p))
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:  # resolve the end offsets now, before anything is produced
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    job = UUID(record.key.decode())  # job events are keyed by job id
                    if tp.topic.endswith(topics.JOB_GENERATED):
                        self.generated.setdefault(job, []).append(record.timestamp)
                    else:
                        self.completed[job] = record.value[:200].decode(errors="replace")
            if self.expected and self.expected <= (self.generated.keys() | self.completed.keys()):
                self.arrived.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


def wire_headers(event_type: str) -> list[tuple[str, bytes]]:
    """What billing's outbox relay puts on tokens.reserved (platform BrokerPublisher)."""
    return [("content-type", b"application/octet-stream"), ("event-type", event_type.encode())]


async def send_all(
    producer: AIOKafkaProducer, events: list[TokensReserved], rate: float
) -> dict[UUID, int]:
    """Send the pre-serialized events; returns job id → the record's timestamp (ms)."""
    wire = [(e.job_id, e.key, e.model_dump_json().encode(), wire_headers(e.type)) for e in events]
    sent: dict[UUID, int] = {}
    pending = []
    t0 = time.perf_counter()
    for n, (job_id, key, value, headers) in enumerate(wire):
        if rate and n % max(1, round(rate * 0.01)) == 0:  # paced: a slice every 10 ms
            await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))
        stamp = int(time.time() * 1000)
        assert job_id is not None
        sent[job_id] = stamp
        pending.append(
            await producer.send(
                PREFIX + topics.TOKENS_RESERVED,
                value=value,
                key=key,
                headers=headers,
                timestamp_ms=stamp,
            )
        )
    await asyncio.gather(*pending)
    return sent


async def run_round(
    producer: AIOKafkaProducer,
    collector: Collector,
    events: list[TokensReserved],
    rate: float,
    timeout_s: float,
) -> dict[UUID, int]:
    collector.expected = {e.job_id for e in events if e.job_id}
    collector.arrived.clear()
    sent = await send_all(producer, events, rate)
    await asyncio.wait_for(collector.arrived.wait(), timeout=timeout_s)
    return sent


async def verify(job_ids: set[UUID]) -> tuple[dict[str, int], int]:
    conn = await asyncpg.connect(f"{bench.PG}/{DB}")
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) FROM runs WHERE job_id = ANY($1::uuid[]) GROUP BY status",
            list(job_ids),
        )
        outbox = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = 'job.generated' AND published_at IS NULL"
        )
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}, outbox


def staged_objects(client: Minio, delete: bool) -> int:
    listing = client.list_objects(BUCKET, prefix="staging/", recursive=True)
    objects = [o.object_name for o in listing if o.object_name]
    if delete and objects:
        for error in client.remove_objects(BUCKET, (DeleteObject(o) for o in objects)):
            print(f"could not delete {error.name}: {error.message}", file=sys.stderr)
    return len(objects)


async def main(args: argparse.Namespace) -> int:
    store = ObjectStoreSettings()
    minio = Minio(
        store.endpoint.removeprefix("http://"),
        access_key=store.access_key,
        secret_key=store.secret_key.get_secret_value(),
        secure=store.secure,
    )
    await bench.ensure_database(DB)
    proc = orchestrator_process(args.concurrency)
    proc.start()
    try:
        await proc.wait_ready()
        await bench.truncate(
            DB,
            ["runs", "attempts", "outbox", "processed_events", "cancel_requests", "prompt_cache"],
        )
        if minio.bucket_exists(BUCKET):
            staged_objects(minio, delete=True)
        producer = AIOKafkaProducer(bootstrap_servers=bench.KAFKA, linger_ms=2, acks="all")
        await producer.start()
        collector = Collector()
        await collector.start(producer)
        try:
            apps = [uuid4() for _ in range(args.apps)]
            if args.warmup:  # first claims, catalog load, prepared statements, connections
                warm = [reserved(apps[i % len(apps)], i, "warm-up") for i in range(args.warmup)]
                await run_round(producer, collector, warm, 0, 120)
            events = [reserved(apps[i % len(apps)], i, "timed") for i in range(args.jobs)]
            load_before = bench.loadavg()
            spy = bench.start_py_spy(proc.pid, args.py_spy) if args.py_spy else None
            stack = bench.StackCpu(
                extra={"bench orchestrator": proc.pid, "bench client": os.getpid()}
            )
            stack.start()
            began = time.perf_counter()
            cpu0, sql0 = (
                bench.cpu_seconds(proc.pid),
                bench.metric(PORT, "genhub_db_statements_total"),
            )
            sent = await run_round(producer, collector, events, args.rate, args.timeout)
            cpu1, sql1 = (
                bench.cpu_seconds(proc.pid),
                bench.metric(PORT, "genhub_db_statements_total"),
            )
            stack_used, stack_wall = stack.stop(), time.perf_counter() - began
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 30)
            load_after = bench.loadavg()
        finally:
            await collector.stop()
            await producer.stop()

        ids = set(sent)
        latencies = [collector.generated[j][0] - sent[j] for j in ids if j in collector.generated]
        duplicates = sum(1 for j in ids if len(collector.generated.get(j, ())) > 1)
        completed = [collector.completed[j] for j in ids if j in collector.completed]
        first_sent = min(sent.values())
        last_generated = max(collector.generated[j][-1] for j in ids if j in collector.generated)
        wall = max(0.001, (last_generated - first_sent) / 1000)
        jobs = len(latencies)
        statuses, unpublished = await verify(ids)
        staged = staged_objects(minio, delete=not args.keep)

        print(
            f"jobs {args.jobs}  apps {args.apps}  orchestrator concurrency {args.concurrency}  "
            f"{f'paced {args.rate:g}/s' if args.rate else 'burst'}  warm-up {args.warmup}"
        )
        print(f"loadavg before {load_before}  after {load_after} (2 cores)")
        print(
            f"throughput tokens.reserved → job.generated: {jobs / wall:,.0f} jobs/s "
            f"({jobs} job.generated in {wall:.2f} s)"
        )
        cpu = cpu1 - cpu0
        print(
            f"orchestrator process CPU {cpu:.2f} s: {cpu / max(1, jobs) * 1000:.2f} ms per job "
            f"({jobs / max(cpu, 1e-9):,.0f} jobs per CPU-second)"
        )
        print(f"SQL statements: {(sql1 - sql0) / max(1, jobs):.3f} per job")
        for line in bench.stack_cpu_lines(stack_used, jobs, "job", stack_wall):
            print(line)
        if latencies:
            print(
                f"latency tokens.reserved → job.generated: p50 {statistics.median(latencies):.0f}"
                f" ms  p95 {bench.percentile(latencies, 95):.0f} ms"
                f"  p99 {bench.percentile(latencies, 99):.0f} ms"
            )
        problems = []
        if jobs != len(ids):
            problems.append(f"{len(ids) - jobs} jobs without job.generated")
        if duplicates:
            problems.append(f"{duplicates} jobs with more than one job.generated")
        if completed:
            problems.append(f"{len(completed)} job.completed, e.g. {completed[0]}")
        if statuses != {"generated": len(ids)}:
            problems.append(f"run statuses {statuses}")
        if staged < len(ids) + args.warmup:
            problems.append(f"only {staged} staged objects in MinIO")
        if unpublished:
            problems.append(f"{unpublished} job.generated rows unpublished")
        print("checks: " + ("; ".join(problems) if problems else "all passed"))
        return 1 if problems else 0
    finally:
        proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--py-spy", metavar="OUT", help="profile the timed round into OUT")
    parser.add_argument("--keep", action="store_true", help="keep the staged objects")
    parser.add_argument(
        "--rate", type=float, default=0, help="paced arrivals (jobs/s) instead of a burst"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
