"""Concurrent claimers never get the same run (FOR UPDATE SKIP LOCKED), against PostgreSQL."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID, uuid4

from genhub_contracts import JobSpec
from genhub_orchestrator.adapters.repositories import RunRepository, StartedRun
from genhub_orchestrator.adapters.tables import Run
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text

LEASE = timedelta(seconds=60)


async def claim_runs(
    uow: UnitOfWork, *, limit: int, owner: UUID, lease: timedelta
) -> list[StartedRun]:
    """What the worker's claim does in SQL: candidates under the claim lock, then start them."""
    repo = RunRepository(uow.session)
    view = await repo.claim_view(slots=limit)
    return await repo.start([c.job_id for c in view.candidates], owner=owner, lease=lease)


async def stored(
    uow_factory: Callable[[], UnitOfWork], job_id: UUID
) -> tuple[str, int, UUID | None, bool]:
    """(status, claims, lease owner, has a lease) of the run's row."""
    async with uow_factory() as uow:
        run = await uow.session.get(Run, job_id)
        assert run is not None
        return run.status, run.claims, run.lease_owner, run.lease_until is not None


async def insert_runs(uow_factory: Callable[[], UnitOfWork], priorities: list[int]) -> list[UUID]:
    ids = []
    for priority in priorities:  # one transaction each: created_at is the transaction's time
        async with uow_factory() as uow:
            repo = RunRepository(uow.session)
            spec = JobSpec.model_validate(
                {"user_id": "u1", "model": "mock", "input": {"prompt": "p"}, "priority": priority}
            )
            job_id = uuid4()
            await repo.insert(
                Run(
                    job_id=job_id,
                    app_id=uuid4(),
                    user_id="u1",
                    model="mock",
                    spec=spec.model_dump(mode="json"),
                    priority=priority,
                    status="queued",
                )
            )
            ids.append(job_id)
            await uow.commit()
    return ids


async def test_two_open_claims_never_share_a_run(orch_uow: Callable[[], UnitOfWork]) -> None:
    ids = await insert_runs(orch_uow, [5] * 6)
    # Claimer A holds its transaction open while B claims: B waits for the claim lock and
    # then sees A's runs as running.
    async with orch_uow() as a, orch_uow() as b:
        got_a = await claim_runs(a, limit=4, owner=uuid4(), lease=LEASE)
        claim_b = asyncio.create_task(claim_runs(b, limit=4, owner=uuid4(), lease=LEASE))
        await asyncio.sleep(0.2)
        assert not claim_b.done()  # serialised behind A
        await a.commit()
        got_b = await claim_b
        await b.commit()
    ids_a = {r.job_id for r in got_a}
    ids_b = {r.job_id for r in got_b}
    assert len(ids_a) == 4 and len(ids_b) == 2
    assert ids_a.isdisjoint(ids_b)
    assert ids_a | ids_b == set(ids)


async def test_concurrent_claim_loops_hand_out_each_run_once(
    orch_uow: Callable[[], UnitOfWork],
) -> None:
    ids = await insert_runs(orch_uow, [i % 10 for i in range(60)])

    async def claimer() -> list[UUID]:
        owner, mine = uuid4(), []
        while True:
            async with orch_uow() as uow:
                runs = await claim_runs(uow, limit=3, owner=owner, lease=LEASE)
                await uow.commit()
            if not runs:
                return mine
            mine.extend(r.job_id for r in runs)
            await asyncio.sleep(0)

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    flat = [job for result in results for job in result]
    assert len(flat) == len(set(flat)) == len(ids)
    assert set(flat) == set(ids)


async def test_claim_order_is_priority_then_age(orch_uow: Callable[[], UnitOfWork]) -> None:
    # Lower number = more urgent (0 is the top priority).
    urgent, relaxed, mid, relaxed_later = await insert_runs(orch_uow, [1, 9, 5, 9])
    async with orch_uow() as uow:
        runs = await claim_runs(uow, limit=4, owner=uuid4(), lease=LEASE)
        await uow.commit()
    assert [r.job_id for r in runs] == [urgent, mid, relaxed, relaxed_later]
    assert all(r.claims == 1 for r in runs)
    for run in runs:
        status, claims, _, leased = await stored(orch_uow, run.job_id)
        assert status == "running" and claims == 1 and leased


async def test_expired_lease_is_claimed_again(orch_uow: Callable[[], UnitOfWork]) -> None:
    (job_id,) = await insert_runs(orch_uow, [5])
    first_owner, second_owner = uuid4(), uuid4()
    async with orch_uow() as uow:
        assert len(await claim_runs(uow, limit=5, owner=first_owner, lease=LEASE))
        await uow.commit()
    async with orch_uow() as uow:  # a live lease is not claimable
        assert await claim_runs(uow, limit=5, owner=second_owner, lease=LEASE) == []
        await uow.commit()
    async with orch_uow() as uow:  # the first worker died: its lease runs out
        await uow.session.exec(  # type: ignore[call-overload]
            text("UPDATE runs SET lease_until = now() - interval '1 second'")
        )
        await uow.commit()
    async with orch_uow() as uow:
        runs = await claim_runs(uow, limit=5, owner=second_owner, lease=LEASE)
        await uow.commit()
    assert [r.job_id for r in runs] == [job_id]
    assert runs[0].claims == 2
    assert (await stored(orch_uow, job_id))[:3] == ("running", 2, second_owner)
    async with orch_uow() as uow:  # the old owner can neither heartbeat nor finish it
        repo = RunRepository(uow.session)
        assert await repo.extend_lease(job_id, first_owner, LEASE) is None
        assert await repo.lock_owned(job_id, first_owner) is None
        assert await repo.extend_lease(job_id, second_owner, LEASE) is False


async def test_one_heartbeat_extends_every_run_still_held(
    orch_uow: Callable[[], UnitOfWork],
) -> None:
    owner, other = uuid4(), uuid4()
    mine, flagged, taken = await insert_runs(orch_uow, [1, 2, 3])
    async with orch_uow() as uow:
        await claim_runs(uow, limit=3, owner=owner, lease=timedelta(seconds=1))
        await uow.commit()
    async with orch_uow() as uow:  # one is cancelled meanwhile, another taken over
        await uow.session.exec(  # type: ignore[call-overload]
            text("UPDATE runs SET cancel_requested = true WHERE job_id = :j").bindparams(j=flagged)
        )
        await uow.session.exec(  # type: ignore[call-overload]
            text("UPDATE runs SET lease_owner = :o WHERE job_id = :j").bindparams(o=other, j=taken)
        )
        await uow.commit()
    async with orch_uow() as uow:
        flags = await RunRepository(uow.session).extend_leases(
            [mine, flagged, taken, uuid4()], owner, LEASE
        )
        await uow.commit()
    assert flags == {mine: False, flagged: True}
    async with orch_uow() as uow:
        rows = (
            await uow.session.exec(  # type: ignore[call-overload]
                text(
                    "SELECT job_id, lease_until > now() + interval '30 seconds' FROM runs "
                    "WHERE job_id IN (:a, :b, :c)"
                ).bindparams(a=mine, b=flagged, c=taken)
            )
        ).all()
    assert dict(rows) == {mine: True, flagged: True, taken: False}  # only ours extended


async def test_a_claim_ranking_a_prefix_of_the_queue_finds_what_ranking_all_of_it_finds(
    orch_uow: Callable[[], UnitOfWork],
) -> None:
    """The claim ranks the first `scan` queued runs; when apps at their limit fill that
    prefix it ranks the whole queue: the candidates never depend on the prefix's size."""
    free, pro, big = uuid4(), uuid4(), uuid4()
    queue = [(free, "free")] * 6 + [(pro, "pro")] * 4 + [(big, "enterprise"), (free, "free")] * 2
    jobs: dict[UUID, UUID] = {}
    for app_id, plan in queue:  # one transaction each: oldest first in this order
        async with orch_uow() as uow:
            spec = JobSpec.model_validate(
                {"user_id": "u1", "model": "mock", "input": {"prompt": "p"}}
            )
            job_id = uuid4()
            await RunRepository(uow.session).insert(
                Run(
                    job_id=job_id,
                    app_id=app_id,
                    user_id="u1",
                    model="mock",
                    spec=spec.model_dump(mode="json"),
                    plan=plan,
                    status="queued",
                )
            )
            jobs[job_id] = app_id
            await uow.commit()
    async with orch_uow() as uow:  # the oldest run starts: the free app is at its limit
        await claim_runs(uow, limit=1, owner=uuid4(), lease=LEASE)
        await uow.commit()

    async def candidates(slots: int, scan: int) -> list[UUID]:
        async with orch_uow() as uow:
            view = await RunRepository(uow.session).claim_view(slots=slots, scan=scan)
            await uow.commit()
        return [c.job_id for c in view.candidates if c.job_id in jobs]

    for slots in (1, 2, 3, 5, 8):
        whole = await candidates(slots, 10_000)
        for scan in (1, 2, 3, 4, 7, 20):
            assert await candidates(slots, scan) == whole, (slots, scan)
    # The free app (limit 1, one running) fills the head of the queue: the others still come.
    assert [jobs[j] for j in await candidates(3, 2)] == [pro, pro, pro]  # the pro limit is 3
    assert [jobs[j] for j in await candidates(4, 2)] == [pro, pro, pro, big]
