"""Notifier delivery benchmark: deliveries/s to a local receiver and the delay from
`job.completed` (published to Kafka) to the webhook's first attempt (arrival at the receiver).

    uv run python deploy/bench/bench_notifier.py [--rate 200] [--seconds 5] [--apps 10]
        [--burst 1000]

Needs the running notifier (NOTIFIER_URL, default http://127.0.0.1:8084) with
NOTIFIER_ALLOW_PRIVATE_WEBHOOKS=true (the local profile) and Kafka (KAFKA_BOOTSTRAP_SERVERS).
It registers one endpoint per fresh app on a minimal loopback HTTP server that runs in a child
process (so the producer's work here never delays or stamps an arrival late), and deletes the
endpoints at the end (anything still pending then fails without a request instead of retrying
against a closed port). With --pid (default: var/run/notifier.pid when present) it also reports
the notifier's CPU time per delivery.

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
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
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

NOTIFIER = os.environ.get("NOTIFIER_URL", "http://127.0.0.1:8084")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
GROUP = "notifier"


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


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def notifier_pid(arg: int | None) -> int | None:
    if arg is not None:
        return arg
    pidfile = Path(__file__).resolve().parents[2] / "var" / "run" / "notifier.pid"
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


async def delete_endpoints(apps: list[uuid.UUID], endpoint_ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=NOTIFIER, timeout=10) as http:
        for app, endpoint in zip(apps, endpoint_ids, strict=False):
            await http.delete(f"/internal/apps/{app}/endpoints/{endpoint}")


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


Job = tuple[uuid.UUID, uuid.UUID, TokensSettled]


async def prepare(
    producer: AIOKafkaProducer, apps: list[uuid.UUID], count: int, presettled: bool
) -> list[Job]:
    jobs: list[Job] = []
    sends = []
    for i in range(count):
        app = apps[i % len(apps)]
        job, requested, settled = job_events(app)
        jobs.append((app, job, settled))
        for event in (requested, settled) if presettled else (requested,):
            sends.append(
                await producer.send(event.TOPIC, event.model_dump_json().encode(), key=event.key)
            )
    await asyncio.gather(*sends)
    await wait_consumed([JobRequested.TOPIC, TokensSettled.TOPIC])
    return jobs


async def finish(
    producer: AIOKafkaProducer,
    app: uuid.UUID,
    job: uuid.UUID,
    settled: TokensSettled,
    presettled: bool,
) -> None:
    """job.completed, then (as billing would) the job's tokens.settled."""
    event = completion(app, job)
    await producer.send(event.TOPIC, event.model_dump_json().encode(), key=event.key)
    if not presettled:
        await producer.send(settled.TOPIC, settled.model_dump_json().encode(), key=settled.key)


async def run(args: argparse.Namespace) -> int:
    receiver = ReceiverProcess()
    try:
        return await measure(args, receiver)
    finally:
        receiver.stop()


async def measure(args: argparse.Namespace, receiver: ReceiverProcess) -> int:
    pid = notifier_pid(args.pid)
    apps = [uuid.uuid4() for _ in range(args.apps)]
    endpoint_ids: list[str] = []
    async with httpx.AsyncClient(base_url=NOTIFIER, timeout=10) as http:
        try:
            (await http.get("/readyz")).raise_for_status()
        except httpx.HTTPError as exc:
            print(f"notifier at {NOTIFIER} is not ready ({exc}); start the stack first")
            return 2
        for app in apps:
            response = await http.post(
                f"/internal/apps/{app}/endpoints",
                json={
                    "url": f"http://127.0.0.1:{receiver.port}/hook/{app}",
                    # billing rejects these unfunded jobs for real: leave job.rejected out
                    "event_types": ["job.failed"],
                },
            )
            response.raise_for_status()
            endpoint_ids.append(response.json()["endpoint"]["id"])

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=2)
    await producer.start()
    try:
        paced_count = int(args.rate * args.seconds)
        paced_jobs = await prepare(producer, apps, paced_count, args.presettled)
        burst_jobs = await prepare(producer, apps, args.burst, args.presettled)
        await asyncio.sleep(1.0)

        # paced: steady rate, delay from publish to arrival
        published: dict[str, float] = {}
        interval = 1.0 / args.rate
        paced_cpu_start = cpu_seconds(pid)
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
        paced_cpu_end = cpu_seconds(pid)
        delays = [(arrivals[k] - t) * 1000 for k, t in published.items() if k in arrivals]
        missing = len(published) - len(delays)

        # burst: throughput with a backlog
        burst_ids = [job_message_id(job, WebhookEventType.FAILED) for _, job, _ in burst_jobs]
        burst_start = time.time()
        cpu_start = cpu_seconds(pid)
        for app, job, settled in burst_jobs:
            await finish(producer, app, job, settled, args.presettled)
        await producer.flush()
        arrivals = await receiver.wait_for(burst_ids, 120)
        cpu_end = cpu_seconds(pid)
        got = [arrivals[k] for k in burst_ids if k in arrivals]
    finally:
        await producer.stop()
        await delete_endpoints(apps, endpoint_ids)

    print(
        f"notifier benchmark against {NOTIFIER} (Kafka {KAFKA}), {args.apps} apps/endpoints, "
        + (
            "settlements published up front"
            if args.presettled
            else "tokens.settled after each job.completed"
        )
    )
    print(f"load    {loadavg()}")
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
    if pid is not None and None not in (paced_cpu_start, paced_cpu_end, cpu_start, cpu_end):
        assert paced_cpu_start is not None and paced_cpu_end is not None
        assert cpu_start is not None and cpu_end is not None
        per_paced = (paced_cpu_end - paced_cpu_start) * 1000 / max(1, len(delays))
        per_burst = (cpu_end - cpu_start) * 1000 / max(1, len(got))
        print(
            f"cpu     notifier (pid {pid}) CPU per delivery: paced {per_paced:.2f} ms, "
            f"burst {per_burst:.2f} ms (includes whatever else the shared stack sent it)"
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
    parser.add_argument("--pid", type=int, default=None, help="notifier pid (CPU per delivery)")
    parser.add_argument(
        "--presettled",
        action="store_true",
        help="publish tokens.settled before the timed phase (no settlement wait measured)",
    )
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
