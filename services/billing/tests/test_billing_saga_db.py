"""The saga side of billing against PostgreSQL: reservations under concurrency, idempotent
replays, exactly-once settlement, hold expiry, and the database's own guards."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import pytest
from genhub_billing import services
from genhub_billing.cli import reconcile_command
from genhub_billing.domain.ledger import user_account_id
from genhub_contracts import (
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    OutputFile,
    RejectReason,
    TokensRejected,
    TokensReserved,
    TokensSettled,
)
from genhub_contracts.events import JobCompletedPayload, JobRequestedPayload
from genhub_platform.uow import UnitOfWork
from sqlalchemy.exc import DBAPIError, IntegrityError

MakeUow = Callable[[], UnitOfWork]
TTL = 1800


async def deliver(
    make_uow: MakeUow, event: Any, handler: Callable[[UnitOfWork], Awaitable[None]]
) -> bool:
    """What the platform's EventConsumer does per delivery: inbox check, handler, commit."""
    async with make_uow() as uow:
        if not await uow.first_delivery(f"billing.{event.type}", event.event_id):
            return False
        await handler(uow)
        await uow.commit()
    return True


def requested(
    app_id: UUID, user: str = "u1", outputs: int = 1, model: str = "mock"
) -> JobRequested:
    spec = JobSpec(
        user_id=user, model=model, input=GenerationInput(prompt="a cat", num_outputs=outputs)
    )
    return JobRequested.new(app_id=app_id, job_id=uuid4(), payload=JobRequestedPayload(spec=spec))


def replay(event: Any) -> Any:
    """The same event re-published upstream: same content, new event id."""
    return event.model_copy(update={"event_id": uuid4()})


def completed(req: JobRequested, status: JobStatus, delivered: int) -> JobCompleted:
    outputs = [
        OutputFile(
            index=i, key=f"outputs/{i}.png", content_type="image/png", width=8, height=8,
            bytes=1, sha256="0" * 64,
        )
        for i in range(delivered)
    ]  # fmt: skip
    payload = JobCompletedPayload(
        user_id=req.payload.spec.user_id,
        status=status,
        requested_outputs=req.payload.spec.input.num_outputs,
        outputs=outputs,
    )
    return JobCompleted.new(app_id=req.app_id, job_id=req.job_id, payload=payload)


async def reserve(make_uow: MakeUow, event: JobRequested, ttl: int = TTL) -> bool:
    return await deliver(
        make_uow, event, lambda u: services.reserve_for_job(u, event, hold_ttl_s=ttl)
    )


async def settle(make_uow: MakeUow, event: JobCompleted) -> bool:
    return await deliver(make_uow, event, lambda u: services.settle_job(u, event))


async def grant(make_uow: MakeUow, app_id: UUID, user: str, amount: int) -> None:
    async with make_uow() as uow:
        await services.grant_tokens(
            uow, app_id=app_id, user_id=user, amount=amount, reason="test", idempotency_key=None
        )
        await uow.commit()


async def funds(make_uow: MakeUow, app_id: UUID, user: str = "u1") -> tuple[int, int]:
    async with make_uow() as uow:
        f = await services.get_funds(uow, app_id=app_id, user_id=user)
    return f.balance, f.reserved


async def assert_reconciles(make_uow: MakeUow) -> None:
    async with make_uow() as uow:
        report = await services.run_reconcile(uow)
    assert report.ok, report.problems


# --- reservations ----------------------------------------------------------------------------


@pytest.mark.parametrize(("balance", "price_outputs", "attempts"), [(95, 1, 20), (100, 3, 12)])
async def test_concurrent_reservations_succeed_exactly_floor_b_over_p(
    make_uow: MakeUow, outbox: Any, app_id: UUID, balance: int, price_outputs: int, attempts: int
) -> None:
    await grant(make_uow, app_id, "u1", balance)
    price = 10 * price_outputs
    events = [requested(app_id, outputs=price_outputs) for _ in range(attempts)]
    await asyncio.gather(*(reserve(make_uow, e) for e in events))

    published = await outbox()
    reserved = [e for e in published if isinstance(e, TokensReserved)]
    rejected = [e for e in published if isinstance(e, TokensRejected)]
    assert len(reserved) == balance // price
    assert len(rejected) == attempts - balance // price
    assert all(r.payload.reason is RejectReason.INSUFFICIENT_TOKENS for r in rejected)
    assert all(r.payload.required == price for r in rejected)
    assert await funds(make_uow, app_id) == (balance, (balance // price) * price)
    await assert_reconciles(make_uow)


async def test_reserved_event_forwards_the_spec(
    make_uow: MakeUow, outbox: Any, app_id: UUID
) -> None:
    await grant(make_uow, app_id, "u1", 100)
    event = requested(app_id, outputs=3)
    await reserve(make_uow, event)
    [out] = await outbox()
    assert isinstance(out, TokensReserved)
    assert (out.job_id, out.app_id, out.payload.amount) == (event.job_id, app_id, 30)
    assert out.payload.spec == event.payload.spec


async def test_new_user_is_auto_created_and_rejected_with_numbers(
    make_uow: MakeUow, outbox: Any, sql: Any, app_id: UUID
) -> None:
    await reserve(make_uow, requested(app_id, user="newbie", outputs=2))
    [out] = await outbox()
    assert isinstance(out, TokensRejected)
    assert out.payload.reason is RejectReason.INSUFFICIENT_TOKENS
    assert (out.payload.balance, out.payload.required, out.payload.user_id) == (0, 20, "newbie")
    rows = await sql("SELECT balance, reserved FROM accounts WHERE id = :id",
                     id=user_account_id(app_id, "newbie"))  # fmt: skip
    assert [tuple(r) for r in rows] == [(0, 0)]


async def test_unknown_model_is_rejected(make_uow: MakeUow, outbox: Any, app_id: UUID) -> None:
    await grant(make_uow, app_id, "u1", 100)
    await reserve(make_uow, requested(app_id, model="nope"))
    [out] = await outbox()
    assert isinstance(out, TokensRejected)
    assert out.payload.reason is RejectReason.UNKNOWN_MODEL
    assert await funds(make_uow, app_id) == (100, 0)


async def test_app_price_override_applies(
    make_uow: MakeUow, outbox: Any, sql: Any, app_id: UUID
) -> None:
    await sql("INSERT INTO prices (app_id, model, tokens_per_output) VALUES (:a, 'mock', 3)",
              a=app_id)  # fmt: skip
    await grant(make_uow, app_id, "u1", 100)
    await reserve(make_uow, requested(app_id, outputs=2))
    [out] = await outbox()
    assert isinstance(out, TokensReserved) and out.payload.amount == 6


# --- replays ---------------------------------------------------------------------------------


async def test_replayed_job_requested_changes_nothing(
    make_uow: MakeUow, outbox: Any, sql: Any, app_id: UUID
) -> None:
    await grant(make_uow, app_id, "u1", 100)
    event = requested(app_id, outputs=2)
    assert await reserve(make_uow, event)
    assert not await reserve(make_uow, event)  # same event id: the inbox drops it
    assert await reserve(make_uow, replay(event))  # new id: applied, but the hold decides
    await asyncio.gather(*(reserve(make_uow, replay(event)) for _ in range(5)))

    assert len(await outbox()) == 1
    assert await funds(make_uow, app_id) == (100, 20)
    assert (await sql("SELECT count(*) FROM holds"))[0][0] == 1
    await assert_reconciles(make_uow)


async def test_replayed_rejection_stays_rejected_after_a_grant(
    make_uow: MakeUow, outbox: Any, app_id: UUID
) -> None:
    event = requested(app_id)
    await reserve(make_uow, event)
    await grant(make_uow, app_id, "u1", 100)
    await reserve(make_uow, replay(event))
    published = await outbox()
    assert [type(e) for e in published] == [TokensRejected]
    assert await funds(make_uow, app_id) == (100, 0)


# --- settlement ------------------------------------------------------------------------------


async def test_success_posts_pro_rata_exactly_once(
    make_uow: MakeUow, outbox: Any, app_id: UUID
) -> None:
    await grant(make_uow, app_id, "u1", 100)
    req = requested(app_id, outputs=4)
    await reserve(make_uow, req)
    done = completed(req, JobStatus.SUCCEEDED, delivered=3)
    assert await settle(make_uow, done)
    assert not await settle(make_uow, done)
    await settle(make_uow, replay(done))
    await settle(make_uow, completed(req, JobStatus.FAILED, 0))  # a late contradiction

    settled = [e for e in await outbox() if isinstance(e, TokensSettled)]
    assert len(settled) == 1
    p = settled[0].payload
    assert (p.outcome, p.charged, p.refunded, p.balance_after) == ("posted", 30, 10, 70)
    assert await funds(make_uow, app_id) == (70, 0)
    await assert_reconciles(make_uow)


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
async def test_failure_voids_exactly_once(
    make_uow: MakeUow, outbox: Any, app_id: UUID, status: JobStatus
) -> None:
    await grant(make_uow, app_id, "u1", 50)
    req = requested(app_id, outputs=2)
    await reserve(make_uow, req)
    await settle(make_uow, completed(req, status, 0))
    await settle(make_uow, completed(req, JobStatus.SUCCEEDED, 2))  # must not charge now

    settled = [e for e in await outbox() if isinstance(e, TokensSettled)]
    assert [(s.payload.outcome, s.payload.charged, s.payload.refunded) for s in settled] == [
        ("voided", 0, 20)
    ]
    assert await funds(make_uow, app_id) == (50, 0)
    await assert_reconciles(make_uow)


async def test_concurrent_settlements_apply_once(
    make_uow: MakeUow, outbox: Any, app_id: UUID
) -> None:
    await grant(make_uow, app_id, "u1", 100)
    req = requested(app_id, outputs=1)
    await reserve(make_uow, req)
    racers = [completed(req, JobStatus.SUCCEEDED, 1) for _ in range(4)]
    racers += [completed(req, JobStatus.FAILED, 0) for _ in range(4)]
    await asyncio.gather(*(settle(make_uow, e) for e in racers))
    assert len([e for e in await outbox() if isinstance(e, TokensSettled)]) == 1
    balance, reserved = await funds(make_uow, app_id)
    assert reserved == 0 and balance in (90, 100)
    await assert_reconciles(make_uow)


async def test_many_jobs_concurrently_keep_the_ledger_exact(
    make_uow: MakeUow, app_id: UUID
) -> None:
    users = [f"u{i}" for i in range(5)]
    await asyncio.gather(*(grant(make_uow, app_id, u, 60) for u in users))
    reqs = [requested(app_id, user=u, outputs=2) for u in users for _ in range(4)]
    await asyncio.gather(*(reserve(make_uow, r) for r in reqs))
    outcomes = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    await asyncio.gather(
        *(settle(make_uow, completed(r, outcomes[i % 3], i % 3)) for i, r in enumerate(reqs))
    )
    await assert_reconciles(make_uow)


async def test_completion_for_an_unknown_job_is_ignored(
    make_uow: MakeUow, outbox: Any, app_id: UUID
) -> None:
    await settle(make_uow, completed(requested(app_id), JobStatus.SUCCEEDED, 1))
    assert await outbox() == []


async def test_completion_from_another_app_cannot_settle(
    make_uow: MakeUow, outbox: Any, app_id: UUID
) -> None:
    await grant(make_uow, app_id, "u1", 10)
    req = requested(app_id)
    await reserve(make_uow, req)
    forged = completed(req, JobStatus.SUCCEEDED, 1).model_copy(update={"app_id": uuid4()})
    await settle(make_uow, forged)
    assert await funds(make_uow, app_id) == (10, 10)


# --- expiry ----------------------------------------------------------------------------------


async def test_expired_holds_are_voided_once_and_late_completion_is_ignored(
    make_uow: MakeUow, outbox: Any, app_id: UUID
) -> None:
    await grant(make_uow, app_id, "u1", 30)
    expiring, fresh = requested(app_id), requested(app_id)
    await reserve(make_uow, expiring, ttl=0)
    await reserve(make_uow, fresh)

    async def sweep() -> int:
        async with make_uow() as uow:
            n = await services.expire_holds(uow, limit=10)
            await uow.commit()
        return n

    counts = await asyncio.gather(sweep(), sweep(), sweep())
    assert sum(counts) == 1
    await settle(make_uow, completed(expiring, JobStatus.SUCCEEDED, 1))

    settled = [e for e in await outbox() if isinstance(e, TokensSettled)]
    assert [(s.job_id, s.payload.outcome, s.payload.refunded) for s in settled] == [
        (expiring.job_id, "voided", 10)
    ]
    assert await funds(make_uow, app_id) == (30, 10)
    await assert_reconciles(make_uow)


# --- database guards and reconciliation ------------------------------------------------------


async def test_check_constraint_refuses_overdraft(
    make_uow: MakeUow, sql: Any, app_id: UUID
) -> None:
    await grant(make_uow, app_id, "u1", 10)
    with pytest.raises(IntegrityError):
        await sql("UPDATE accounts SET reserved = 11 WHERE id = :id",
                  id=user_account_id(app_id, "u1"))  # fmt: skip
    with pytest.raises(IntegrityError):
        await sql("UPDATE accounts SET reserved = -1 WHERE id = :id",
                  id=user_account_id(app_id, "u1"))  # fmt: skip


async def test_transfers_are_immutable(make_uow: MakeUow, sql: Any, app_id: UUID) -> None:
    await grant(make_uow, app_id, "u1", 10)
    with pytest.raises(DBAPIError, match="immutable"):
        await sql("UPDATE transfers SET amount = 1")
    with pytest.raises(DBAPIError, match="immutable"):
        await sql("DELETE FROM transfers")


async def test_reconcile_names_a_tampered_account(
    make_uow: MakeUow, sql: Any, app_id: UUID, migrated_db: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    await grant(make_uow, app_id, "u1", 10)
    await grant(make_uow, app_id, "u2", 10)
    monkeypatch.setenv("BILLING_DATABASE_URL", migrated_db)
    args = type("Args", (), {"app_id": None})()
    assert await reconcile_command(args) == 0  # type: ignore[arg-type]
    assert "OK" in capsys.readouterr().out

    tampered = user_account_id(app_id, "u2")
    await sql("UPDATE accounts SET balance = balance + 5 WHERE id = :id", id=tampered)
    assert await reconcile_command(args) == 1  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "FAULTY ACCOUNTS (2)" in out  # the user and the app-level double-entry check
    assert str(tampered) in out
    assert str(user_account_id(app_id, "u1")) not in out
