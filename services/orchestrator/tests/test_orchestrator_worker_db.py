"""The run queue end to end against PostgreSQL: handlers' use cases, the worker, the outbox.

Object storage is an in-memory fake; providers are the real mock provider.
"""

import asyncio
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from genhub_contracts import (
    Envelope,
    ErrorCode,
    JobCancelRequested,
    JobCompleted,
    JobGenerated,
    JobStarted,
    JobStatus,
    TokensReserved,
    parse_event,
)
from genhub_contracts.events import JobCancelRequestedPayload, TokensReservedPayload
from genhub_orchestrator.adapters.providers import ProviderRegistry
from genhub_orchestrator.adapters.providers.mock import MockProvider
from genhub_orchestrator.adapters.repositories import RunRepository
from genhub_orchestrator.adapters.tables import Attempt, Run
from genhub_orchestrator.domain.runs import CancelAction
from genhub_orchestrator.services.runs import (
    after_commit,
    enqueue_run,
    enqueue_runs,
    request_cancel,
)
from genhub_orchestrator.services.worker import RunWorker, WorkerOptions
from genhub_platform.outbox import OutboxMessage
from genhub_platform.uow import UnitOfWork
from PIL import Image
from sqlalchemy import select, text

UowFactory = Callable[[], UnitOfWork]


class FakeStaging:
    bucket = "genhub-test"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.ensured = 0

    async def ensure_bucket(self) -> None:
        self.ensured += 1

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (data, content_type)

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)


def reserved(app_id: UUID | None = None, **input_: Any) -> TokensReserved:
    gen_input = {"prompt": "a castle on a hill", "seed": 3, "num_outputs": 2, **input_}
    spec = {"user_id": "user-1", "model": "mock", "input": gen_input}
    return TokensReserved.new(
        app_id=app_id or uuid4(),
        job_id=uuid4(),
        payload=TokensReservedPayload.model_validate(
            {"spec": spec, "hold_id": str(uuid4()), "amount": 20}
        ),
    )


def cancel(event: TokensReserved, app_id: UUID | None = None) -> JobCancelRequested:
    assert event.job_id is not None
    return JobCancelRequested.new(
        app_id=app_id or event.app_id,
        job_id=event.job_id,
        payload=JobCancelRequestedPayload(user_id="user-1"),
    )


def make_worker(uow: UowFactory, staging: FakeStaging, **opts: Any) -> RunWorker:
    options = WorkerOptions(**{"poll_interval_s": 0.2, "provider_timeout_s": 5.0, **opts})
    registry = ProviderRegistry(env={}, overrides={"mock": MockProvider(latency_ms=0)})
    return RunWorker(uow, staging, registry, options)


async def enqueue(uow_factory: UowFactory, event: TokensReserved) -> bool:
    async with uow_factory() as uow:
        inserted = await enqueue_run(uow, event)
        await uow.commit()
    return inserted


async def do_cancel(uow_factory: UowFactory, event: JobCancelRequested) -> CancelAction:
    async with uow_factory() as uow:
        action = await request_cancel(uow, event)
        await uow.commit()
    return action


async def events(uow_factory: UowFactory, job_id: UUID | None) -> list[Envelope[Any]]:
    async with uow_factory() as uow:
        rows = (
            await uow.session.exec(select(OutboxMessage).order_by(OutboxMessage.id))  # type: ignore[call-overload,arg-type]
        ).scalars()
        parsed = [parse_event(row.payload) for row in rows]
    return [e for e in parsed if e.job_id == job_id]


async def run_row(uow_factory: UowFactory, event: TokensReserved) -> Run:
    assert event.job_id is not None
    async with uow_factory() as uow:
        run = await RunRepository(uow.session).get(event.job_id, event.app_id)
        assert run is not None
        uow.session.expunge(run)  # keep its loaded state: leaving the unit of work rolls back
    return run


async def claim_and_execute(worker: RunWorker) -> int:
    claimed = await worker.claim_batch(8)
    await asyncio.gather(*(worker.execute(run) for run in claimed))
    return len(claimed)


async def test_enqueue_is_idempotent(orch_uow: UowFactory) -> None:
    event = reserved()
    assert await enqueue(orch_uow, event) is True
    assert await enqueue(orch_uow, event) is False
    run = await run_row(orch_uow, event)
    assert run.status == "queued" and run.hold_amount == 20 and run.priority == 5
    assert run.spec["input"]["prompt"] == "a castle on a hill"


async def test_after_commit_fires_only_on_commit(orch_uow: UowFactory) -> None:
    calls: list[str] = []
    async with orch_uow() as uow:
        await enqueue_run(uow, reserved())
        after_commit(uow, lambda: calls.append("rolled back"))
    async with orch_uow() as uow:
        await enqueue_run(uow, reserved())
        after_commit(uow, lambda: calls.append("committed"))
        assert calls == []
        await uow.commit()
    assert calls == ["committed"]


async def test_generated_run_stages_pngs_and_publishes(orch_uow: UowFactory) -> None:
    staging = FakeStaging()
    worker = make_worker(orch_uow, staging)
    event = reserved(aspect_ratio="16:9")
    await enqueue(orch_uow, event)
    assert await claim_and_execute(worker) == 1

    run = await run_row(orch_uow, event)
    assert run.status == "generated" and run.provider == "mock" and run.attempts == 1
    assert run.lease_owner is None and run.finished_at is not None

    started, generated = await events(orch_uow, event.job_id)
    assert isinstance(started, JobStarted) and started.payload.provider == "mock"
    assert isinstance(generated, JobGenerated)
    payload = generated.payload
    assert payload.requested_outputs == 2 and payload.output_format == "png"
    assert payload.provider == "mock" and payload.model == "mock" and payload.attempts == 1
    keys = [f"staging/{event.app_id}/{event.job_id}/{i}.png" for i in range(2)]
    assert [s.key for s in payload.staged] == keys
    assert all(s.bucket == "genhub-test" and s.content_type == "image/png" for s in payload.staged)
    data = [staging.objects[k][0] for k in keys]
    assert data[0] != data[1]
    with Image.open(io.BytesIO(data[0])) as img:
        assert img.size == (1024, 576)

    async with orch_uow() as uow:
        attempts = (await uow.session.exec(select(Attempt))).scalars().all()  # type: ignore[call-overload]
        assert [(a.provider, a.outcome, a.claim) for a in attempts] == [("mock", "succeeded", 1)]


async def test_provider_failure_fails_the_job(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging())
    event = reserved(mock_fail=True)
    await enqueue(orch_uow, event)
    await claim_and_execute(worker)

    run = await run_row(orch_uow, event)
    assert run.status == "failed" and run.error_code == "provider_error"
    _, completed = await events(orch_uow, event.job_id)
    assert isinstance(completed, JobCompleted)
    assert completed.payload.status is JobStatus.FAILED
    assert completed.payload.error is not None
    assert completed.payload.error.code is ErrorCode.PROVIDER_ERROR
    assert completed.payload.requested_outputs == 2 and completed.payload.attempts == 1


async def test_provider_timeout(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging(), provider_timeout_s=0.05)
    event = reserved(mock_latency_ms=2_000)
    await enqueue(orch_uow, event)
    await claim_and_execute(worker)
    _, completed = await events(orch_uow, event.job_id)
    assert isinstance(completed, JobCompleted) and completed.payload.error is not None
    assert completed.payload.error.code is ErrorCode.PROVIDER_TIMEOUT


async def test_cancel_queued_run_ends_it_once(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging())
    event = reserved()
    await enqueue(orch_uow, event)
    assert await do_cancel(orch_uow, cancel(event)) is CancelAction.END_NOW
    assert await do_cancel(orch_uow, cancel(event)) is CancelAction.IGNORE
    assert await claim_and_execute(worker) == 0

    run = await run_row(orch_uow, event)
    assert run.status == "cancelled" and run.error_code == "cancelled"
    (completed,) = await events(orch_uow, event.job_id)
    assert isinstance(completed, JobCompleted)
    assert completed.payload.status is JobStatus.CANCELLED
    assert completed.payload.error is not None
    assert completed.payload.error.code is ErrorCode.CANCELLED


async def test_cancel_from_another_app_is_ignored(orch_uow: UowFactory) -> None:
    event = reserved()
    await enqueue(orch_uow, event)
    await do_cancel(orch_uow, cancel(event, app_id=uuid4()))
    assert (await run_row(orch_uow, event)).status == "queued"


async def test_cancel_while_running_discards_the_late_result(orch_uow: UowFactory) -> None:
    staging = FakeStaging()
    worker = make_worker(orch_uow, staging)
    event = reserved(mock_latency_ms=300)
    await enqueue(orch_uow, event)
    (claimed,) = await worker.claim_batch(8)
    execution = asyncio.create_task(worker.execute(claimed))
    await asyncio.sleep(0.05)
    assert await do_cancel(orch_uow, cancel(event)) is CancelAction.FLAG
    await execution

    run = await run_row(orch_uow, event)
    assert run.status == "cancelled"
    kinds = [type(e) for e in await events(orch_uow, event.job_id)]
    assert kinds == [JobStarted, JobCompleted]
    assert staging.objects == {}  # staged output of a cancelled job is removed


async def test_heartbeat_notices_cancel_during_a_slow_provider(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging(), lease=timedelta(seconds=1.5))
    event = reserved(mock_latency_ms=30_000)
    await enqueue(orch_uow, event)
    (claimed,) = await worker.claim_batch(8)
    execution = asyncio.create_task(worker.execute(claimed))
    await asyncio.sleep(0.1)
    await do_cancel(orch_uow, cancel(event))
    await asyncio.wait_for(execution, timeout=3)  # the heartbeat (every 0.5s) stops the call
    assert (await run_row(orch_uow, event)).status == "cancelled"


async def test_cancel_before_reservation_is_remembered(orch_uow: UowFactory) -> None:
    event = reserved()
    assert await do_cancel(orch_uow, cancel(event)) is CancelAction.REMEMBER
    assert await enqueue(orch_uow, event) is False
    run = await run_row(orch_uow, event)
    assert run.status == "cancelled" and run.cancel_requested
    assert run.error_code == "cancelled" and run.finished_at is not None
    assert run.spec == event.payload.spec.model_dump(mode="json")
    (completed,) = await events(orch_uow, event.job_id)
    assert isinstance(completed, JobCompleted)
    assert completed.payload.status is JobStatus.CANCELLED
    assert await enqueue(orch_uow, event) is False  # redelivery changes nothing
    assert len(await events(orch_uow, event.job_id)) == 1


async def test_run_taken_over_after_lease_loss_ends_once(orch_uow: UowFactory) -> None:
    staging = FakeStaging()
    old, new = make_worker(orch_uow, staging), make_worker(orch_uow, staging)
    event = reserved()
    await enqueue(orch_uow, event)
    (stale,) = await old.claim_batch(8)
    async with orch_uow() as uow:
        await uow.session.exec(text("UPDATE runs SET lease_until = now() - interval '1s'"))  # type: ignore[call-overload]
        await uow.commit()
    (fresh,) = await new.claim_batch(8)
    assert fresh.claim == 2
    await old.execute(stale)  # its result is dropped: the run is not its own any more
    assert (await run_row(orch_uow, event)).status == "running"
    await new.execute(fresh)
    run = await run_row(orch_uow, event)
    assert run.status == "generated" and run.claims == 2
    kinds = [type(e) for e in await events(orch_uow, event.job_id)]
    assert kinds == [JobStarted, JobStarted, JobGenerated]


async def test_run_claimed_too_often_fails(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging(), max_claims=1)
    event = reserved()
    await enqueue(orch_uow, event)
    assert len(await worker.claim_batch(8)) == 1  # ...and the worker dies
    async with orch_uow() as uow:
        await uow.session.exec(text("UPDATE runs SET lease_until = now() - interval '1s'"))  # type: ignore[call-overload]
        await uow.commit()
    assert await worker.claim_batch(8) == []
    run = await run_row(orch_uow, event)
    assert run.status == "failed" and run.error_code == "provider_error"
    assert isinstance((await events(orch_uow, event.job_id))[-1], JobCompleted)


async def test_unknown_model_fails_with_no_route(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging())
    event = reserved()
    spec = event.payload.spec.model_copy(update={"model": "nonexistent"})
    event = event.model_copy(update={"payload": event.payload.model_copy(update={"spec": spec})})
    await enqueue(orch_uow, event)
    assert await worker.claim_batch(8) == []
    run = await run_row(orch_uow, event)
    assert run.status == "failed" and run.error_code == "no_route"


async def test_loop_wakes_on_commit_and_releases_on_shutdown(orch_uow: UowFactory) -> None:
    staging = FakeStaging()
    # A long poll interval: only the wake-up can make the first run finish quickly.
    worker = make_worker(orch_uow, staging, poll_interval_s=30.0)
    loop = asyncio.create_task(worker.run_forever())
    await asyncio.sleep(0.1)
    assert staging.ensured == 1

    quick = reserved()
    async with orch_uow() as uow:
        assert await enqueue_run(uow, quick)
        after_commit(uow, worker.wake)
        await uow.commit()
    for _ in range(50):
        if (await run_row(orch_uow, quick)).status == "generated":
            break
        await asyncio.sleep(0.05)
    assert (await run_row(orch_uow, quick)).status == "generated"

    slow = reserved(mock_latency_ms=60_000)
    async with orch_uow() as uow:
        await enqueue_run(uow, slow)
        after_commit(uow, worker.wake)
        await uow.commit()
    for _ in range(50):
        if (await run_row(orch_uow, slow)).status == "running":
            break
        await asyncio.sleep(0.05)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    run = await run_row(orch_uow, slow)
    assert run.status == "queued" and run.claims == 0 and run.lease_owner is None


async def test_loop_runs_several_runs_concurrently(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging(), max_concurrency=4)
    jobs = [reserved(num_outputs=1, mock_latency_ms=400) for _ in range(4)]
    for job in jobs:
        await enqueue(orch_uow, job)
    started = asyncio.get_running_loop().time()
    loop = asyncio.create_task(worker.run_forever())
    try:
        for _ in range(100):
            statuses = {(await run_row(orch_uow, j)).status for j in jobs}
            if statuses == {"generated"}:
                break
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert statuses == {"generated"}
    assert asyncio.get_running_loop().time() - started < 1.5  # not 4 x 400ms in a row


async def test_stray_cancel_from_another_app_does_not_shadow_the_owner(
    orch_uow: UowFactory,
) -> None:
    event = reserved()
    await do_cancel(orch_uow, cancel(event, app_id=uuid4()))  # before reservation, wrong app
    await do_cancel(orch_uow, cancel(event))  # the owner's own early cancel
    assert await enqueue(orch_uow, event) is False
    assert (await run_row(orch_uow, event)).status == "cancelled"


async def test_stray_cancel_alone_does_not_cancel(orch_uow: UowFactory) -> None:
    event = reserved()
    await do_cancel(orch_uow, cancel(event, app_id=uuid4()))
    assert await enqueue(orch_uow, event) is True
    assert (await run_row(orch_uow, event)).status == "queued"


async def test_heartbeat_notices_a_lost_lease_during_a_slow_provider(orch_uow: UowFactory) -> None:
    staging = FakeStaging()
    worker = make_worker(orch_uow, staging, lease=timedelta(seconds=1.5))
    slow, quick = reserved(mock_latency_ms=30_000), reserved(mock_latency_ms=30_000)
    for event in (slow, quick):
        await enqueue(orch_uow, event)
    claimed = await worker.claim_batch(8)
    assert len(claimed) == 2
    executions = [asyncio.create_task(worker.execute(run)) for run in claimed]
    await asyncio.sleep(0.1)
    async with orch_uow() as uow:  # another worker took one run over
        await uow.session.exec(  # type: ignore[call-overload]
            text("UPDATE runs SET lease_owner = :o WHERE job_id = :j").bindparams(
                o=uuid4(), j=slow.job_id
            )
        )
        await uow.commit()
    await do_cancel(orch_uow, cancel(quick))  # the other one is cancelled (no interrupt() call)
    await asyncio.wait_for(asyncio.gather(*executions), timeout=3)  # one beat stops both
    assert (await run_row(orch_uow, slow)).status == "running"  # left to its new owner
    assert (await run_row(orch_uow, quick)).status == "cancelled"
    assert [type(e) for e in await events(orch_uow, slow.job_id)] == [JobStarted]
    assert staging.objects == {}


async def test_claim_uses_the_spec_this_process_enqueued(orch_uow: UowFactory) -> None:
    worker = make_worker(orch_uow, FakeStaging())
    mine, theirs = reserved(), reserved()
    async with orch_uow() as uow:
        assert await enqueue_runs(uow, [mine], on_queued=worker.remember_specs) == 1
        await uow.commit()
    await enqueue(orch_uow, theirs)  # e.g. another replica's
    claimed = {run.job_id: run for run in await worker.claim_batch(8)}
    assert claimed[mine.job_id].spec is mine.payload.spec  # not read back nor parsed again
    assert claimed[theirs.job_id].spec == theirs.payload.spec  # parsed from the row
    assert claimed[theirs.job_id].spec is not theirs.payload.spec
