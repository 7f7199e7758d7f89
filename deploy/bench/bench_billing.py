"""Reservation throughput and latency of billing's real reserve path, against PostgreSQL.

    uv run python deploy/bench/bench_billing.py [--holds 5000] [--workers 16] [--accounts 10000]

Runs against the *test* database (`genhub_billing_test`, or BILLING_TEST_DATABASE_URL), which
it migrates to head first; it refuses any database whose name does not end in `_test`. Each
run uses fresh app ids, so runs never collide; it leaves its rows behind (transfers are
immutable; the billing test suite rebuilds that schema anyway).

Two scenarios, each a fixed number of `job.requested` deliveries shared by N concurrent
workers; each delivery is what billing's Kafka consumer does: inbox check, `reserve_for_job`,
commit. Latency is measured around that whole transaction.

  hot-account   every hold reserves from one user with a huge balance (row-lock contention)
  10k-accounts  holds spread round-robin over many funded users (no contention)
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from genhub_billing import services
from genhub_billing.cli import MIGRATIONS_DIR
from genhub_contracts import GenerationInput, JobRequested, JobSpec
from genhub_contracts.events import JobRequestedPayload
from genhub_platform.db import SessionFactory, make_session_factory
from genhub_platform.migrations import upgrade_to_head
from genhub_platform.uow import UnitOfWork
from sqlalchemy import event
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_URL = os.environ.get(
    "BILLING_TEST_DATABASE_URL",
    "postgresql+asyncpg://genhub:genhub@127.0.0.1:5432/genhub_billing_test",
)
HOLD_TTL_S = 1800
GRANT_BATCH = 500  # users granted per transaction while setting up


@dataclass
class Result:
    name: str
    holds: int
    reserved: int = 0
    rejected: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    handler_ms: list[float] = field(default_factory=list)
    commit_ms: list[float] = field(default_factory=list)
    statements: int = 0

    def pct(self, values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def job_requested(app_id: UUID, user: str) -> JobRequested:
    spec = JobSpec(user_id=user, model="mock", input=GenerationInput(prompt="b", num_outputs=1))
    return JobRequested.new(app_id=app_id, job_id=uuid4(), payload=JobRequestedPayload(spec=spec))


async def fund(sessions: SessionFactory, app_id: UUID, users: list[str], amount: int) -> None:
    """Grant every user `amount` through the grant use case, a batch per transaction."""

    async def batch(chunk: list[str]) -> None:
        async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
            for user in chunk:
                await services.grant_tokens(
                    uow, app_id=app_id, user_id=user, amount=amount, reason="bench",
                    idempotency_key=None,
                )  # fmt: skip
            await uow.commit()

    chunks = [users[i : i + GRANT_BATCH] for i in range(0, len(users), GRANT_BATCH)]
    sem = asyncio.Semaphore(8)

    async def guarded(chunk: list[str]) -> None:
        async with sem:
            await batch(chunk)

    await asyncio.gather(*(guarded(c) for c in chunks))


async def run_scenario(
    name: str, engine: AsyncEngine, users: list[str], amount: int, holds: int, workers: int
) -> Result:
    sessions = make_session_factory(engine)
    app_id = uuid4()
    t = time.perf_counter()
    await fund(sessions, app_id, users, amount)
    print(f"  {name}: funded {len(users)} account(s) in {time.perf_counter() - t:.1f}s",
          file=sys.stderr)  # fmt: skip

    events = [job_requested(app_id, users[i % len(users)]) for i in range(holds)]
    result = Result(name, holds)
    counter = {"statements": 0}

    def count(*_: object) -> None:
        counter["statements"] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    queue = iter(events)

    async def worker() -> None:
        for ev in queue:  # a shared iterator: each event is taken by exactly one worker
            t0 = time.perf_counter()
            async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
                await uow.first_delivery("billing.job.requested", ev.event_id)
                await services.reserve_for_job(uow, ev, hold_ttl_s=HOLD_TTL_S)
                t1 = time.perf_counter()
                await uow.commit()
            t2 = time.perf_counter()
            result.handler_ms.append((t1 - t0) * 1000)
            result.commit_ms.append((t2 - t1) * 1000)
            result.latencies_ms.append((t2 - t0) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    result.wall_s = time.perf_counter() - start
    event.remove(engine.sync_engine, "before_cursor_execute", count)
    result.statements = counter["statements"]

    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        report = await services.run_reconcile(uow, app_id=app_id)
    if not report.ok:
        raise SystemExit(f"{name}: reconcile failed: {report.problems[:5]}")
    result.reserved = report.holds_checked
    result.rejected = holds - result.reserved
    return result


def print_table(results: list[Result], workers: int) -> None:
    header = (
        f"{'scenario':<14}{'holds':>7}{'ok':>7}{'workers':>8}{'holds/s':>9}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'txn p50':>9}{'commit p50':>11}{'stmts/hold':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<14}{r.holds:>7}{r.reserved:>7}{workers:>8}{r.holds / r.wall_s:>9.0f}"
            f"{statistics.median(r.latencies_ms):>8.1f}{r.pct(r.latencies_ms, 0.99):>8.1f}"
            f"{max(r.latencies_ms):>8.1f}{statistics.median(r.handler_ms):>9.1f}"
            f"{statistics.median(r.commit_ms):>11.1f}{r.statements / r.holds:>11.1f}"
        )
    print(
        "\nlatency = inbox insert + reserve_for_job + commit, per job.requested;"
        " txn = everything before COMMIT; ok = holds created (reconcile ok)."
    )


async def main_async(args: argparse.Namespace) -> None:
    engine = create_async_engine(args.db_url, pool_size=args.workers + 2, max_overflow=4)
    try:
        # Warm up the pool and the prepared statements outside the measured runs.
        await run_scenario("warm-up", engine, ["w"], 10**6, min(200, args.holds), args.workers)
        hot = await run_scenario("hot-account", engine, ["hot"], 10**9, args.holds, args.workers)
        users = [f"user-{i}" for i in range(args.accounts)]
        spread = await run_scenario(
            f"{args.accounts // 1000}k-accounts" if args.accounts >= 1000 else "accounts",
            engine, users, 1000, args.holds, args.workers,
        )  # fmt: skip
    finally:
        await engine.dispose()
    print_table([hot, spread], args.workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--holds", type=int, default=5000, help="holds per scenario")
    parser.add_argument("--workers", type=int, default=16, help="concurrent reservers")
    parser.add_argument("--accounts", type=int, default=10_000, help="users in scenario (b)")
    parser.add_argument("--db-url", default=DEFAULT_URL)
    args = parser.parse_args()

    database = make_url(args.db_url).database or ""
    if not database.endswith("_test"):
        raise SystemExit(f"refusing to benchmark against {database!r}: use a *_test database")
    upgrade_to_head(MIGRATIONS_DIR, args.db_url)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
