"""Notifier delivery benchmark: deliveries/s to a local receiver and the delay from
`job.completed` (published to Kafka) to the webhook's first attempt (arrival at the receiver).

    uv run python deploy/bench/bench_notifier.py [--rate 200] [--seconds 5] [--apps 10]
        [--burst 1000] [--py-spy OUT]

It starts ONE real notifier process of its own (`genhub-notifier serve`, the stack's entry
point) on port 18084 with its own database `genhub_notifier_bench` (created, migrated, emptied)
and its own Kafka namespace: every topic it consumes carries the prefix `bench-notif.`
(KAFKA_TOPIC_PREFIX), so the stack's billing, gateway and storage never see the benchmark's
fake jobs (on the shared stack they reacted to every one of them, and the 2-core machine was
at 100 % CPU during the run), and the notifier sees nothing but the benchmark. Kafka and
PostgreSQL are the stack's (`make infra-up`). Its settings are the local profile's (private
loopback URLs allowed, compressed retry schedule); NOTIFIER_ENCRYPTION_KEY comes from
var/secrets.env.

It registers one endpoint per fresh app on a minimal loopback HTTP server that runs in a child
process (so the producer's work here never delays or stamps an arrival late), and reports the
notifier's CPU time per delivery (/proc/<pid>/stat) and SQL statements per delivery
(`genhub_db_statements_total`).

For every job it first publishes `job.requested` (untimed) and waits until the notifier's
consumer group has consumed it, as in the real saga where it precedes the job's end. Then, as
billing does after a job ends, each `job.completed` is followed by the job's `tokens.settled`
(published right after it; the webhook reports tokens charged, so the notifier holds the
message until the settlement arrives, at most 30 s). The delay measured runs from
`job.completed` to the first attempt and so includes that wait. `--presettled` publishes the
settlements up front instead (the older, kinder measurement).

  paced   job.completed (+ tokens.settled) at a steady --rate for --seconds;
          delay = arrival - publish time of job.completed
  burst   --burst of them published at once; deliveries/s = burst / (last arrival - publish)

Jobs end as `failed`, so the notifier makes no storage call (a `succeeded` job adds one storage
round trip per attempt for fresh output URLs).
"""

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from bench_support import (
    KAFKA,
    PG,
    ROOT,
    ServiceProcess,
    cpu_seconds,
    ensure_database,
    loadavg,
    metric,
    percentile,
    start_py_spy,
    truncate,
)
from genhub_contracts import (
    ErrorCode,
    ErrorInfo,
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    TokensSettled,
)
from genhub_contracts.events import (
    JobCompletedPayload,
    JobRequestedPayload,
    TokensSettledPayload,
)
from genhub_notifier.domain.delivery import WebhookEventType, job_message_id

PREFIX = "bench-notif."
GROUP = PREFIX + "notifier"
DB = "genhub_notifier_bench"
PORT = 18084
TABLES = [
    "endpoints",
    "signing_secrets",
    "job_settlements",
    "job_subscriptions",
    "messages",
    "deliveries",
    "delivery_attempts",
    "processed_events",
]


@dataclass
class Receiver:
    """Bare HTTP/1.1 keep-alive server: answers 200 at once, notes when each webhook-id came."""

    arrivals: dict[str, float] = field(default_factory=dict)
    port: int = 0
    connections: int = 0  # opened by the notifier (keep-alive reuse keeps this low)

    async def start(self) -> None:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.time()
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.arrivals.setdefault(headers.get("webhook-id", ""), now)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()


def _receiver_main(conn: Connection) -> None:
    """Child process: serve until told to stop, then send back every arrival time."""

    async def serve() -> None:
        receiver = Receiver()
        await receiver.start()
        conn.send(receiver.port)
        loop = asyncio.get_running_loop()
        while True:
            request = await loop.run_in_executor(None, conn.recv)
            conn.send((dict(receiver.arrivals), receiver.connections))
            if request == "stop":
                return

    asyncio.run(serve())


class ReceiverProcess:
    """The receiver in its own process; `arrivals()` asks it for what came so far."""

    def __init__(self) -> None:
        self.connections = 0
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("fork").Process(
            target=_receiver_main, args=(child,), daemon=True
        )
        self._process.start()
        self.port: int = self._conn.recv()

    def arrivals(self) -> dict[str, float]:
        self._conn.send("get")
        arrivals: dict[str, float]
        arrivals, self.connections = self._conn.recv()
        return arrivals

    async def wait_for(self, ids: list[str], timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            arrivals = self.arrivals()
            if all(k in arrivals for k in ids) or time.monotonic() > deadline:
                return arrivals
            await asyncio.sleep(0.25)

    def stop(self) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._process.join(5)


def notifier_process() -> ServiceProcess:
    return ServiceProcess(
        "notifier",
        PORT,
        {
            "NOTIFIER_DATABASE_URL": f"{PG}/{DB}",
            "KAFKA_TOPIC_PREFIX": PREFIX,
            "GENHUB_ENV": "local",
            "NOTIFIER_ALLOW_PRIVATE_WEBHOOKS": "true",
            "NOTIFIER_RETRY_SCHEDULE": "0,1,2,3,4",
            "LOG_LEVEL": "WARNING",
        },
        ROOT / "var" / "log" / "bench-notifier.log",
    )


def job_events(app: uuid.UUID) -> tuple[uuid.UUID, JobRequested, TokensSettled]:
    job = uuid.uuid4()
    spec = JobSpec(user_id="bench", model="mock", input=GenerationInput(prompt="bench"))
    requested = JobRequested.new(app_id=app, job_id=job, payload=JobRequestedPayload(spec=spec))
    settled = TokensSettled.new(
        app_id=app,
        job_id=job,
        payload=TokensSettledPayload(
            user_id="bench", outcome="voided", charged=0, refunded=10, balance_after=100
        ),
    )
    return job, requested, settled


def completion(app: uuid.UUID, job: uuid.UUID) -> JobCompleted:
    return JobCompleted.new(
        app_id=app,
        job_id=job,
        payload=JobCompletedPayload(
            user_id="bench",
            status=JobStatus.FAILED,
            requested_outputs=1,
            error=ErrorInfo(code=ErrorCode.PROVIDER_ERROR, message="bench"),
        ),
    )


async def wait_consumed(topics: list[str], timeout: float = 120.0) -> None:
    """Until the notifier group's committed offsets reach the end of `topics`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA)
    await admin.start()
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(GROUP, partitions=parts)
            behind = sum(
                max(0, end - (committed[tp].offset if tp in committed else 0))
                for tp, end in ends.items()
            )
            if behind == 0:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"the notifier did not consume its backlog ({behind} behind)")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await admin.close()


Job = tuple[uuid.UUID, uuid.UUID, TokensSettled]


async def send(
    producer: AIOKafkaProducer, event: JobRequested | JobCompleted | TokensSettled
) -> None:
    await producer.send(PREFIX + event.TOPIC, event.model_dump_json().encode(), key=event.key)


async def prepare(
    producer: AIOKafkaProducer, apps: list[uuid.UUID], count: int, presettled: bool
) -> list[Job]:
    jobs: list[Job] = []
    for i in range(count):
        app = apps[i % len(apps)]
        job, requested, settled = job_events(app)
        jobs.append((app, job, settled))
        for event in (requested, settled) if presettled else (requested,):
            await send(producer, event)
    await producer.flush()
    await wait_consumed([PREFIX + JobRequested.TOPIC, PREFIX + TokensSettled.TOPIC])
    return jobs


async def finish(
    producer: AIOKafkaProducer,
    app: uuid.UUID,
    job: uuid.UUID,
    settled: TokensSettled,
    presettled: bool,
) -> None:
    """job.completed, then (as billing would) the job's tokens.settled."""
    await send(producer, completion(app, job))
    if not presettled:
        await send(producer, settled)


async def run(args: argparse.Namespace) -> int:
    await ensure_database(DB)
    notifier = notifier_process()
    notifier.start()
    receiver = ReceiverProcess()
    try:
        await notifier.wait_ready()
        await truncate(DB, TABLES)
        return await measure(args, notifier, receiver)
    finally:
        receiver.stop()
        notifier.stop()


async def register_endpoints(url: str, apps: list[uuid.UUID], receiver_port: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for app in apps:
            response = await http.post(
                f"/internal/apps/{app}/endpoints",
                json={
                    "url": f"http://127.0.0.1:{receiver_port}/hook/{app}",
                    "event_types": ["job.failed"],
                },
            )
            response.raise_for_status()


async def measure(
    args: argparse.Namespace, notifier: ServiceProcess, receiver: ReceiverProcess
) -> int:
    apps = [uuid.uuid4() for _ in range(args.apps)]
    await register_endpoints(notifier.url, apps, receiver.port)
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=2)
    await producer.start()
    spy = None
    try:
        paced_count = int(args.rate * args.seconds)
        paced_jobs = await prepare(producer, apps, paced_count, args.presettled)
        burst_jobs = await prepare(producer, apps, args.burst, args.presettled)
        if args.py_spy:
            spy = start_py_spy(notifier.pid, args.py_spy)
        await asyncio.sleep(1.0)

        # paced: steady rate, delay from publish to arrival
        published: dict[str, float] = {}
        interval = 1.0 / args.rate
        paced_cpu_start = cpu_seconds(notifier.pid)
        paced_sql_start = metric(PORT, "genhub_db_statements_total")
        start = time.perf_counter()
        for i, (app, job, settled) in enumerate(paced_jobs):
            due = start + i * interval
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            published[job_message_id(job, WebhookEventType.FAILED)] = time.time()
            await finish(producer, app, job, settled, args.presettled)
        await producer.flush()
        sent_s = time.perf_counter() - start
        arrivals = await receiver.wait_for(list(published), 60)
        paced_cpu = cpu_seconds(notifier.pid) - paced_cpu_start
        paced_sql = metric(PORT, "genhub_db_statements_total") - paced_sql_start
        paced_load = loadavg()
        delays = [(arrivals[k] - t) * 1000 for k, t in published.items() if k in arrivals]
        missing = len(published) - len(delays)

        # burst: throughput with a backlog
        burst_ids = [job_message_id(job, WebhookEventType.FAILED) for _, job, _ in burst_jobs]
        burst_start = time.time()
        burst_cpu_start = cpu_seconds(notifier.pid)
        for app, job, settled in burst_jobs:
            await finish(producer, app, job, settled, args.presettled)
        await producer.flush()
        arrivals = await receiver.wait_for(burst_ids, 120)
        burst_cpu = cpu_seconds(notifier.pid) - burst_cpu_start
        got = [arrivals[k] for k in burst_ids if k in arrivals]
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its samples
            spy.wait(30)
        await producer.stop()

    settling = (
        "settlements published up front"
        if args.presettled
        else "tokens.settled after each job.completed"
    )
    print(
        f"notifier benchmark: own process (pid {notifier.pid}, {notifier.url}, topics "
        f"{PREFIX}*, database {DB}), Kafka {KAFKA}, {args.apps} apps/endpoints, {settling}"
    )
    print(f"load    {paced_load} (at the end of the paced phase)")
    if delays:
        print(
            f"paced   {len(published)} job.completed at {len(published) / sent_s:.0f}/s: "
            f"delivered {len(delays)}, missing {missing}; completed→first attempt "
            f"p50 {statistics.median(delays):.1f} ms, p95 {percentile(delays, 95):.1f} ms, "
            f"p99 {percentile(delays, 99):.1f} ms, max {max(delays):.1f} ms"
        )
    else:
        print("paced   nothing delivered")
    if got:
        span = max(got) - burst_start
        print(
            f"burst   {len(burst_ids)} job.completed at once: delivered {len(got)} in "
            f"{span:.2f} s = {len(got) / span:.0f} deliveries/s (publish to last arrival); "
            f"{receiver.connections} connections opened in all"
        )
    paced_ms = paced_cpu * 1000 / max(1, len(delays))
    print(
        f"cpu     notifier CPU per delivery: paced {paced_ms:.2f} ms, "
        f"burst {burst_cpu * 1000 / max(1, len(got)):.2f} ms; SQL statements per delivery "
        f"(paced) {paced_sql / max(1, len(delays)):.2f}"
    )
    ok = bool(delays) and missing == 0 and percentile(delays, 99) < args.target_p99_ms
    verdict = "met" if ok else "NOT met"
    print(f"target p99 < {args.target_p99_ms:.0f} ms at {args.rate:.0f}/s: {verdict}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--target-p99-ms", type=float, default=100.0)
    parser.add_argument("--py-spy", default=None, help="write py-spy samples of the timed phases")
    parser.add_argument(
        "--presettled",
        action="store_true",
        help="publish tokens.settled before the timed phase (no settlement wait measured)",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
