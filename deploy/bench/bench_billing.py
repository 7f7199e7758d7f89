"""Billing's job.requested path: CPU per event of a real billing process, or the batched
reserve path's throughput and latency in-process.

Service mode (the default; `make bench-billing`):

    uv run python deploy/bench/bench_billing.py [--service-rate 300] [--seconds 5]
        [--users 1000] [--phases reject reserve] [--py-spy OUT]

starts ONE real billing process (`genhub-billing serve`, the stack's entry point, through
bench_support.ServiceProcess) on port 18081 with its own database `genhub_billing_bench`
(created afresh each run) and its own Kafka namespace (`bench-bill.` topics: the stack's
services never see the fake jobs, and this billing sees nothing else; its sweeps and plan
scheduler run only at start-up). Two phases publish `job.requested` to Kafka at a steady
--service-rate for --seconds each, the way the gateway does (one record per job, keyed by job):

  reject   the users have no tokens: every job is rejected (the gateway bench's case:
           job.requested -> rejections row + tokens.rejected)
  reserve  the users were granted tokens first: every job is held (holds row, hold transfer,
           account update, tokens.reserved)

A phase ends when every job is decided (rows in the bench database) and the outbox is drained.
Figures per event: CPU-seconds of the billing process (/proc/<pid>/stat utime+stime) over the
phase, and SQL statements it sent (`genhub_db_statements_total`, relay included); `batch avg`
is events per batch transaction. Both depend on it (a busy machine makes the consumer lag and
its batches grow), so compare runs at similar batch sizes.

In-process mode (`--in-process`):

    uv run python deploy/bench/bench_billing.py --in-process [--holds 20000] [--batch 500]
        [--consumers 2] [--accounts 10000] [--rate 1000] [--paced-seconds 5]

Runs against the *test* database (`genhub_billing_test`, or BILLING_TEST_DATABASE_URL), which it
migrates to head first; it refuses any database whose name does not end in `_test`. Each run
uses fresh app ids and leaves its rows behind (the test suite rebuilds that schema anyway).

What one batch does is exactly what billing's Kafka batch consumer does per poll: decode the
`job.requested` JSON of every record, one unit of work with the bulk inbox check
(`record_first_deliveries`), `reserve_batch` (set-based SQL) and the commit.

  hot-account    every hold reserves from one user (one row: the contention case)
  10k-accounts   holds spread round-robin over 10,000 funded users
  paced-1000/s   10k accounts, job.requested arriving at a steady 1,000/s; consumers take
                 whatever has arrived (up to --batch) as soon as they are free

Throughput scenarios start with the whole backlog queued, so their latency is the batch
transaction's (from the batch's start to its commit, per hold). The paced scenario measures
from each job's arrival to its batch's commit, i.e. queueing included.
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import asyncpg
import bench_support as bench
import httpx
from aiokafka import AIOKafkaProducer
from genhub_billing import services
from genhub_billing.cli import MIGRATIONS_DIR
from genhub_contracts import GenerationInput, JobRequested, JobSpec
from genhub_contracts.events import JobRequestedPayload
from genhub_contracts.jobs import AppOptions
from genhub_platform.db import SessionFactory, make_session_factory
from genhub_platform.kafka import record_first_deliveries
from genhub_platform.migrations import upgrade_to_head
from genhub_platform.uow import UnitOfWork
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import create_async_engine

DEFAULT_URL = os.environ.get(
    "BILLING_TEST_DATABASE_URL",
    "postgresql+asyncpg://genhub:genhub@127.0.0.1:5432/genhub_billing_test",
)
HOLD_TTL_S = 1800
CONSUMER = "billing.reserve"


@dataclass
class Result:
    name: str
    holds: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    reserved: int = 0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def job_requested(app_id: UUID, user: str) -> bytes:
    spec = JobSpec(user_id=user, model="mock", input=GenerationInput(prompt="b", num_outputs=1))
    event = JobRequested.new(app_id=app_id, job_id=uuid4(), payload=JobRequestedPayload(spec=spec))
    return event.model_dump_json().encode()


async def fund(sessions: SessionFactory, app_id: UUID, users: list[str], amount: int) -> None:
    """Grant every user `amount` through the batch-grant use case, 1,000 per transaction."""
    for i in range(0, len(users), 1000):
        lines = [services.GrantLine(u, amount, "bench", None) for u in users[i : i + 1000]]
        async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
            await services.grant_batch(uow, app_id=app_id, lines=lines, idempotency_key=None)
            await uow.commit()


async def apply_batch(sessions: SessionFactory, bodies: list[bytes]) -> None:
    """One consumer poll: decode, inbox, reserve, commit."""
    events = [JobRequested.model_validate_json(body) for body in bodies]
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        fresh = await record_first_deliveries(uow.session, CONSUMER, (e.event_id for e in events))
        await services.reserve_batch(
            uow, [e for e in events if e.event_id in fresh], hold_ttl_s=HOLD_TTL_S
        )
        await uow.commit()


async def check(sessions: SessionFactory, app_id: UUID, result: Result) -> None:
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        report = await services.run_reconcile(uow, app_id=app_id)
    if not report.ok:
        raise SystemExit(f"{result.name}: reconcile failed: {report.problems[:5]}")
    result.reserved = report.holds_checked


async def throughput(
    name: str, sessions: SessionFactory, users: list[str], amount: int, args: argparse.Namespace
) -> Result:
    app_id = uuid4()
    t = time.perf_counter()
    await fund(sessions, app_id, users, amount)
    print(f"  {name}: funded {len(users)} account(s) in {time.perf_counter() - t:.1f}s",
          file=sys.stderr)  # fmt: skip
    bodies = [job_requested(app_id, users[i % len(users)]) for i in range(args.holds)]
    batches = iter([bodies[i : i + args.batch] for i in range(0, len(bodies), args.batch)])
    result = Result(name, holds=len(bodies))

    async def consumer() -> None:
        for batch in batches:  # shared iterator: each batch is taken by one consumer
            t0 = time.perf_counter()
            await apply_batch(sessions, batch)
            ms = (time.perf_counter() - t0) * 1000
            result.latencies_ms.extend([ms] * len(batch))
            result.batch_sizes.append(len(batch))

    start = time.perf_counter()
    await asyncio.gather(*(consumer() for _ in range(args.consumers)))
    result.wall_s = time.perf_counter() - start
    await check(sessions, app_id, result)
    return result


async def paced(
    name: str, sessions: SessionFactory, users: list[str], args: argparse.Namespace
) -> Result:
    app_id = uuid4()
    await fund(sessions, app_id, users, 1000)
    total = int(args.rate * args.paced_seconds)
    bodies = [job_requested(app_id, users[i % len(users)]) for i in range(total)]
    queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
    result = Result(name, holds=total)
    done = asyncio.Event()

    async def producer() -> None:
        start = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * args.rate) + 1)
            now = time.perf_counter()
            for body in bodies[sent:due]:
                queue.put_nowait((body, now))
            sent = due
            await asyncio.sleep(0.001)
        done.set()

    async def consumer() -> None:
        while not (done.is_set() and queue.empty()):
            try:
                first = await asyncio.wait_for(queue.get(), timeout=0.05)
            except TimeoutError:
                continue
            batch = [first]
            while len(batch) < args.batch and not queue.empty():
                batch.append(queue.get_nowait())
            await apply_batch(sessions, [body for body, _ in batch])
            now = time.perf_counter()
            result.latencies_ms.extend((now - arrived) * 1000 for _, arrived in batch)
            result.batch_sizes.append(len(batch))

    start = time.perf_counter()
    await asyncio.gather(producer(), *(consumer() for _ in range(args.consumers)))
    result.wall_s = time.perf_counter() - start
    await check(sessions, app_id, result)
    return result


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    header = (
        f"{'scenario':<16}{'holds':>7}{'ok':>7}{'holds/s':>9}{'batch avg':>10}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<16}{r.holds:>7}{r.reserved:>7}{r.holds / r.wall_s:>9.0f}"
            f"{statistics.mean(r.batch_sizes):>10.0f}{statistics.median(r.latencies_ms):>8.1f}"
            f"{r.pct(0.99):>8.1f}{max(r.latencies_ms):>8.1f}"
        )
    print(
        f"\n{args.consumers} consumer(s), batches of up to {args.batch}; ok = holds created"
        " (reconcile ok). Throughput rows: latency = the hold's batch transaction (decode,"
        " inbox, reserve_batch, commit). Paced row: latency = arrival to commit."
    )


async def main_async(args: argparse.Namespace) -> None:
    engine = create_async_engine(args.db_url, pool_size=args.consumers + 2, max_overflow=2)
    sessions = make_session_factory(engine)
    try:
        await throughput("warm-up", sessions, ["w"], 10**7, argparse.Namespace(
            **{**vars(args), "holds": min(2000, args.holds)}))  # fmt: skip
        hot = await throughput("hot-account", sessions, ["hot"], 10**9, args)
        users = [f"user-{i}" for i in range(args.accounts)]
        label = f"{args.accounts // 1000}k-accounts" if args.accounts >= 1000 else "accounts"
        spread = await throughput(label, sessions, users, 1000, args)
        steady = await paced(f"paced-{args.rate:g}/s", sessions, users, args)
    finally:
        await engine.dispose()
    print_table([hot, spread, steady], args)


# --- service mode: one real billing process -------------------------------------------------

PREFIX = "bench-bill."
BENCH_DB = "genhub_billing_bench"
PORT = 18081


def billing_process() -> bench.ServiceProcess:
    return bench.ServiceProcess(
        "billing",
        PORT,
        {
            "BILLING_DATABASE_URL": f"{bench.PG}/{BENCH_DB}",
            "KAFKA_TOPIC_PREFIX": PREFIX,
            "LOG_LEVEL": "WARNING",
            # The sweeps and the plan scheduler run once at start-up, not during the phases.
            "BILLING_HOLD_SWEEP_INTERVAL_S": "3600",
            "BILLING_LOT_SWEEP_INTERVAL_S": "3600",
            "BILLING_PLAN_INTERVAL_S": "3600",
        },
        bench.ROOT / "var" / "log" / "bench-billing.log",
    )


def gateway_like(app_id: UUID, user: str, i: int) -> JobRequested:
    """A job.requested as the gateway publishes it (the app's options snapshotted)."""
    spec = JobSpec(
        user_id=user,
        model="mock",
        input=GenerationInput(prompt=f"a lighthouse at dusk, bench job {i}", num_outputs=1),
        app=AppOptions(),
        metadata={"bench": True},
    )
    return JobRequested.new(app_id=app_id, job_id=uuid4(), payload=JobRequestedPayload(spec=spec))


async def grant_all(app_id: UUID, users: list[str]) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as http:
        for i in range(0, len(users), 1000):
            lines = [
                {"user_id": u, "amount": 10**9, "reason": "bench"} for u in users[i : i + 1000]
            ]
            response = await http.post(
                f"/internal/apps/{app_id}/grants/batch", json={"grants": lines}
            )
            response.raise_for_status()


async def decided(conn: asyncpg.Connection, app_id: UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT (SELECT count(*) FROM holds WHERE app_id = $1)"
        " + (SELECT count(*) FROM rejections WHERE app_id = $1)",
        app_id,
    )
    return count


@dataclass
class Phase:
    name: str
    events: int
    sent_s: float
    drained_s: float
    cpu_s: float
    statements: float
    held: int
    rejected: int
    batches: int  # transactions that decided them (distinct commit-time `now()`)
    load: str


async def run_phase(
    name: str,
    producer: AIOKafkaProducer,
    conn: asyncpg.Connection,
    service: bench.ServiceProcess,
    app_id: UUID,
    users: list[str],
    args: argparse.Namespace,
) -> Phase:
    count = int(args.service_rate * args.seconds)
    events = [gateway_like(app_id, users[i % len(users)], i) for i in range(count)]
    cpu0 = bench.cpu_seconds(service.pid)
    sql0 = bench.metric(PORT, "genhub_db_statements_total")
    start = time.perf_counter()
    sent_s = await publish_paced(producer, events, PREFIX + JobRequested.TOPIC, args.service_rate)
    deadline = time.monotonic() + 120
    while await decided(conn, app_id) < count or await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: billing did not decide every job within 120 s")
        await asyncio.sleep(0.05)
    drained_s = time.perf_counter() - start
    cpu = bench.cpu_seconds(service.pid) - cpu0
    sql = bench.metric(PORT, "genhub_db_statements_total") - sql0
    held = await conn.fetchval("SELECT count(*) FROM holds WHERE app_id = $1", app_id)
    rejected = await conn.fetchval("SELECT count(*) FROM rejections WHERE app_id = $1", app_id)
    batches = await conn.fetchval(
        "SELECT count(DISTINCT created_at) FROM (SELECT created_at FROM holds WHERE app_id = $1"
        " UNION ALL SELECT created_at FROM rejections WHERE app_id = $1) AS decided",
        app_id,
    )
    return Phase(name, count, sent_s, drained_s, cpu, sql, held, rejected, batches, bench.loadavg())


async def fresh_database(name: str) -> None:
    """A bench database dropped and created again (here: no accounts of earlier runs for the
    start-up pass of the plan scheduler to allocate while the phases run)."""
    admin = await asyncpg.connect(f"{bench.PG}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await admin.close()
    await bench.ensure_database(name)


async def tear_down(
    spy: subprocess.Popen[bytes] | None,
    producer: AIOKafkaProducer,
    conn: asyncpg.Connection,
    service: bench.ServiceProcess,
) -> None:
    """py-spy told to write its samples, then the producer, connection and service stopped."""
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
    await producer.stop()
    await conn.close()
    service.stop()


async def publish_paced(
    producer: AIOKafkaProducer, events: list[JobRequested], topic: str, rate: float
) -> float:
    """Send `events` (serialised up front) at a steady `rate`; returns the seconds it took."""
    records = [(event.key, event.model_dump_json().encode()) for event in events]
    headers = [("event-type", JobRequested.TYPE.encode())]
    start = time.perf_counter()
    for i, (key, value) in enumerate(records):
        if (wait := start + i / rate - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        await producer.send(topic, value, key=key, headers=headers)
    await producer.flush()
    return time.perf_counter() - start


async def service_main(args: argparse.Namespace) -> int:
    await fresh_database(BENCH_DB)
    service = billing_process()
    service.start()
    producer = AIOKafkaProducer(bootstrap_servers=bench.KAFKA, acks="all", linger_ms=2)
    conn = await asyncpg.connect(f"{bench.PG}/{BENCH_DB}")
    spy = None
    phases: list[Phase] = []
    try:
        await service.wait_ready()
        await producer.start()
        users = [f"user-{i}" for i in range(args.users)]
        warm = uuid4()
        await grant_all(warm, users[:10])
        await run_phase("warm-up", producer, conn, service, warm, users[:10], argparse.Namespace(
            **{**vars(args), "seconds": 1.0}))  # fmt: skip
        funded = uuid4()
        await grant_all(funded, users)
        if args.py_spy:
            spy = bench.start_py_spy(service.pid, args.py_spy)
        for name, app_id in (("reject", uuid4()), ("reserve", funded)):
            if name not in args.phases:
                continue
            phases.append(await run_phase(name, producer, conn, service, app_id, users, args))
    finally:
        await tear_down(spy, producer, conn, service)
    print(
        f"billing benchmark: own process ({PORT}, topics {PREFIX}*, database {BENCH_DB}),"
        f" job.requested at {args.service_rate:g}/s for {args.seconds:g} s per phase,"
        f" {args.users} users"
    )
    print(
        f"{'phase':<9}{'events':>7}{'held':>7}{'rejected':>9}{'sent/s':>8}{'drained s':>10}"
        f"{'batch avg':>10}{'CPU ms/event':>13}{'SQL/event':>10}  load"
    )
    ok = True
    for p in phases:
        print(
            f"{p.name:<9}{p.events:>7}{p.held:>7}{p.rejected:>9}{p.events / p.sent_s:>8.0f}"
            f"{p.drained_s:>10.2f}{p.events / p.batches:>10.1f}{p.cpu_s * 1000 / p.events:>13.3f}"
            f"{p.statements / p.events:>10.3f}  {p.load}"
        )
        expected = (0, p.events) if p.name == "reject" else (p.events, 0)
        ok = ok and (p.held, p.rejected) == expected
    print("checks: every job decided once, as expected" if ok else "checks FAILED")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--in-process", action="store_true", help="the in-process scenarios")
    parser.add_argument("--service-rate", type=float, default=300.0, help="service mode: events/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="service mode: per phase")
    parser.add_argument("--users", type=int, default=1000, help="service mode: end users")
    parser.add_argument("--py-spy", default=None, help="service mode: write py-spy samples")
    parser.add_argument(
        "--phases", nargs="+", default=["reject", "reserve"], choices=["reject", "reserve"]
    )
    parser.add_argument("--holds", type=int, default=20_000, help="holds per throughput run")
    parser.add_argument("--batch", type=int, default=500, help="max records per batch")
    parser.add_argument("--consumers", type=int, default=2, help="concurrent batch consumers")
    parser.add_argument("--accounts", type=int, default=10_000, help="users in the spread runs")
    parser.add_argument("--rate", type=float, default=1000.0, help="paced arrivals per second")
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--db-url", default=DEFAULT_URL)
    args = parser.parse_args()
    if not args.in_process:
        return asyncio.run(service_main(args))

    database = make_url(args.db_url).database or ""
    if not database.endswith("_test"):
        raise SystemExit(f"refusing to benchmark against {database!r}: use a *_test database")
    upgrade_to_head(MIGRATIONS_DIR, args.db_url)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
