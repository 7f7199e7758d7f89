"""Dispatch overhead of one orchestrator process: tokens.reserved → job.generated, mock at 0 ms.

    uv run --no-sync python deploy/bench/bench_orchestrator.py [--jobs 3000] [--apps 300]
        [--concurrency 128] [--enqueue-batch 100] [--backlog | --rate 200]

What runs is the orchestrator's own code against the real PostgreSQL (database
`genhub_orchestrator_test`, or ORCHESTRATOR_TEST_DATABASE_URL, migrated to head; it refuses any
database not ending in `_test` and empties the run tables first):
- the Kafka batch handler's use case `enqueue_runs` for `tokens.reserved`, `--enqueue-batch`
  events per transaction with the bulk inbox check, as the platform's batch consumer does;
- the real `RunWorker` loop: claim under the claim lock with per-app plan limits, tier-aware
  routing from the catalog, the built-in mock provider at 0 ms (64x64 images), staging into an
  in-memory store, the final transaction with the attempt log and `job.generated` in the outbox.
Kafka and MinIO are left out: the outbox relay's publishing and the S3 upload are not part of
the dispatch overhead being measured. Apps are on the enterprise plan (10 running each).

Latency per job: `runs.finished_at - runs.created_at` (the enqueue transaction's start to the
transaction that wrote job.generated), p50/p99 over all jobs. Throughput: jobs / wall time
from the first enqueue to the last job.generated. A burst or backlog measures throughput (its
latency is mostly queueing); `--rate` paces arrivals below capacity so the latency is the
dispatch path's own. CPU-seconds per job are printed too: on a shared machine the process
gets a fraction of a core, and jobs per CPU-second is what one uncontended core would do.
"""

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from uuid import uuid4

from genhub_contracts import TokensReserved
from genhub_contracts.events import TokensReservedPayload
from genhub_orchestrator.adapters.providers import ProviderRegistry
from genhub_orchestrator.adapters.providers.mock import MockProvider
from genhub_orchestrator.cli import MIGRATIONS_DIR
from genhub_orchestrator.services.runs import enqueue_runs
from genhub_orchestrator.services.worker import RunWorker, WorkerOptions
from genhub_platform.db import make_session_factory
from genhub_platform.kafka import record_first_deliveries
from genhub_platform.migrations import upgrade_to_head
from genhub_platform.uow import UnitOfWork
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

DEFAULT_URL = "postgresql+asyncpg://{u}:{p}@{h}:{port}/genhub_orchestrator_test".format(
    u=os.environ.get("PGUSER", "genhub"),
    p=os.environ.get("PGPASSWORD", "genhub"),
    h=os.environ.get("PGHOST", "127.0.0.1"),
    port=os.environ.get("PGPORT", "5432"),
)


class MemoryStaging:
    bucket = "bench"

    def __init__(self) -> None:
        self.objects = 0

    async def ensure_bucket(self) -> None:
        return None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects += 1

    async def delete(self, key: str) -> None:
        return None


def reserved(app_id: object, i: int) -> TokensReserved:
    spec = {
        "user_id": f"u{i % 50}",
        "model": "mock",
        "plan": "enterprise",
        "cache": False,  # every job goes to the provider: the dispatch path is measured
        "input": {"prompt": f"bench job {i}", "seed": i, "width": 64, "height": 64},
    }
    return TokensReserved.new(
        app_id=app_id,  # type: ignore[arg-type]
        job_id=uuid4(),
        payload=TokensReservedPayload.model_validate(
            {"spec": spec, "hold_id": str(uuid4()), "amount": 10}
        ),
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> int:
    url = os.environ.get("ORCHESTRATOR_TEST_DATABASE_URL", DEFAULT_URL)
    if not url.rsplit("/", 1)[-1].endswith("_test"):
        print("refusing: the benchmark database must end in _test", file=sys.stderr)
        return 2
    await asyncio.to_thread(upgrade_to_head, MIGRATIONS_DIR, url)
    engine = create_async_engine(url, pool_size=20, max_overflow=10)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE runs, attempts, outbox, processed_events CASCADE"))
        # The unit tests' extra providers (test-*) may be left in this database: only the
        # seeded `mock` route serves the `mock` model here.
        await conn.execute(text("DELETE FROM providers WHERE name LIKE 'test-%'"))
    sessions = make_session_factory(engine)
    statements = {"n": 0}

    def count(*_: object) -> None:
        statements["n"] += 1

    sa_event.listen(engine.sync_engine, "before_cursor_execute", count)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, on_commit=lambda: None)

    registry = ProviderRegistry(env={}, overrides={"mock": MockProvider(latency_ms=0)})
    options = WorkerOptions(
        max_concurrency=args.concurrency, poll_interval_s=0.05, catalog_ttl_s=5.0
    )
    worker = RunWorker(uow, MemoryStaging(), registry, options)
    apps = [uuid4() for _ in range(args.apps)]
    events = [reserved(apps[i % len(apps)], i) for i in range(args.jobs)]

    async def produce() -> None:
        # What the platform's batch consumer does per poll: one bulk inbox check, the
        # handler's use case for the fresh events, one commit, then the worker's wake-up.
        size = args.enqueue_batch
        if args.rate:  # paced arrivals: a batch every 20 ms at the given rate
            size = max(1, round(args.rate * 0.02))
        t0 = time.perf_counter()
        for n, start in enumerate(range(0, len(events), size)):
            if args.rate:
                await asyncio.sleep(max(0.0, t0 + n * size / args.rate - time.perf_counter()))
            batch = events[start : start + size]
            async with uow() as unit:
                fresh = await record_first_deliveries(
                    unit.session, "orchestrator.enqueue_run", (e.event_id for e in batch)
                )
                await enqueue_runs(unit, [e for e in batch if e.event_id in fresh])
                await unit.commit()
            worker.wake()
            await asyncio.sleep(0)

    started = time.perf_counter()
    cpu_started = resource.getrusage(resource.RUSAGE_SELF)
    if args.backlog:  # everything queued first: the worker's throughput alone
        await produce()
        enqueued_s = time.perf_counter() - started
        started = time.perf_counter()
        cpu_started = resource.getrusage(resource.RUSAGE_SELF)
        async with engine.begin() as conn:  # latency then counts from the dispatch start
            await conn.execute(text("UPDATE runs SET created_at = clock_timestamp()"))
        loop = asyncio.create_task(worker.run_forever())
    else:
        loop = asyncio.create_task(worker.run_forever())
        await produce()
        enqueued_s = time.perf_counter() - started
    while True:
        async with engine.connect() as conn:
            left = await conn.scalar(
                text("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
            )
        if not left:
            break
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - started
    cpu_now = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_now.ru_utime - cpu_started.ru_utime) + (cpu_now.ru_stime - cpu_started.ru_stime)
    sa_event.remove(engine.sync_engine, "before_cursor_execute", count)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT status, extract(epoch FROM finished_at - created_at) * 1000 FROM runs")
            )
        ).all()
        generated = await conn.scalar(
            text("SELECT count(*) FROM outbox WHERE topic = 'job.generated'")
        )
    await engine.dispose()
    latencies = [float(r[1]) for r in rows if r[0] == "generated"]
    bad = [r[0] for r in rows if r[0] != "generated"]
    print(
        f"jobs {args.jobs}  apps {args.apps}  worker concurrency {args.concurrency}  "
        f"enqueue batch {args.enqueue_batch}"
    )
    print(f"enqueue (handler use case) {args.jobs / enqueued_s:,.0f} events/s")
    print(
        f"dispatch end to end        {len(latencies) / wall:,.0f} jobs/s "
        f"({len(latencies)} generated, {generated} job.generated in the outbox, "
        f"{len(bad)} other: {sorted(set(bad))})"
    )
    print(
        f"process CPU {cpu:.1f} s over {wall:.1f} s wall: {len(latencies) / cpu:,.0f} jobs per "
        "CPU-second (what one uncontended core would sustain; the machine is shared)"
    )
    print(
        f"SQL statements (enqueue + dispatch, executemany counts once): "
        f"{statements['n'] / max(1, args.jobs):.2f} per job"
    )
    if latencies:
        print(
            f"tokens.reserved → job.generated: p50 {statistics.median(latencies):.1f} ms  "
            f"p95 {pct(latencies, 0.95):.1f} ms  p99 {pct(latencies, 0.99):.1f} ms"
        )
    return 0 if not bad else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--apps", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--enqueue-batch", type=int, default=100)
    parser.add_argument(
        "--rate", type=float, default=0, help="paced arrivals (jobs/s) instead of a burst"
    )
    parser.add_argument(
        "--backlog", action="store_true", help="queue every job first, then start the worker"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
