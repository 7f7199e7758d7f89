"""Pricing, free quota, grant expiry, budgets, low balance, cache hits, plans and the batch path,
against the real test database (`genhub_billing_test`)."""

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from genhub_billing import services, sweeps
from genhub_billing.adapters.ledger_repo import LedgerRepo
from genhub_billing.domain.ledger import TransferKind, plan_transfer_id
from genhub_contracts import (
    AppOptions,
    BudgetExceeded,
    JobStatus,
    LowBalance,
    Plan,
    RejectReason,
    TokensRejected,
    TokensReserved,
    TokensSettled,
    parse_event,
)
from genhub_platform.outbox import OutboxRelay

FUTURE = datetime.now(UTC) + timedelta(days=30)


def of(kind: type, events: list[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


async def settings(sql: Any, app_id: UUID, **values: Any) -> None:
    columns = ", ".join(values)
    params = ", ".join(f":{k}" for k in values)
    updates = ", ".join(f"{k} = excluded.{k}" for k in values)
    await sql(
        f"INSERT INTO app_settings (app_id, {columns}) VALUES (:app, {params})"  # noqa: S608
        f" ON CONFLICT (app_id) DO UPDATE SET {updates}",
        app=app_id,
        **values,
    )


# --- batches ---------------------------------------------------------------------------------


async def test_concurrent_batches_on_one_account_hold_exactly_floor_b_over_p(
    saga: Any, outbox: Any
) -> None:
    await saga.grant("u1", 95)
    batches = [[saga.requested() for _ in range(25)] for _ in range(4)]  # N = 100 >> 95 / 10
    await asyncio.gather(*(saga.reserve(*batch) for batch in batches))
    published = await outbox()
    assert len(of(TokensReserved, published)) == 9
    assert len(of(TokensRejected, published)) == 91
    assert await saga.funds() == (95, 90)
    await saga.assert_reconciles()


async def test_a_batch_with_replays_and_duplicates_decides_each_job_once(
    saga: Any, outbox: Any, sql: Any
) -> None:
    await saga.grant("u1", 100)
    a, b = saga.requested(), saga.requested()
    again = a.model_copy(update={"event_id": b.event_id.__class__(int=a.event_id.int ^ 1)})
    await saga.reserve(a, b, again, a)
    await saga.reserve(a, b)  # redelivered batch
    assert len(await outbox()) == 2
    assert (await sql("SELECT count(*) FROM holds"))[0][0] == 2
    assert await saga.funds() == (100, 20)


async def test_killed_after_the_hold_commit_the_outbox_row_is_published_later(
    saga: Any, sql: Any, sessions: Any, migrated_db: str, app_id: UUID
) -> None:
    """A billing process SIGKILLed right after committing a hold, before any relay ran."""
    await saga.grant("u1", 50)
    script = f"""
import asyncio, os, signal
from uuid import UUID
from genhub_billing import services
from genhub_contracts import GenerationInput, JobRequested, JobSpec
from genhub_contracts.events import JobRequestedPayload
from genhub_platform.db import make_session_factory
from genhub_platform.uow import UnitOfWork
from sqlalchemy.ext.asyncio import create_async_engine

async def main():
    sessions = make_session_factory(create_async_engine({migrated_db!r}))
    spec = JobSpec(user_id="u1", model="mock", input=GenerationInput(prompt="p"))
    event = JobRequested.new(app_id=UUID({str(app_id)!r}), job_id=UUID(int=7),
                             payload=JobRequestedPayload(spec=spec))
    async with UnitOfWork(sessions, on_commit=lambda: None) as uow:
        await services.reserve_batch(uow, [event], hold_ttl_s=60)
        await uow.commit()
    os.kill(os.getpid(), signal.SIGKILL)  # gone before anything could publish

asyncio.run(main())
"""
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, env=os.environ.copy()
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert await saga.funds() == (50, 10)  # the hold survived the kill
    [(published_at,)] = await sql("SELECT published_at FROM outbox")
    assert published_at is None

    sent: list[bytes] = []

    class Recorder:
        async def send(self, topic: str, payload: bytes, key: bytes, headers: Any) -> Any:
            sent.append(payload)
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

    assert await OutboxRelay(sessions, Recorder()).publish_pending() == 1
    [event] = [parse_event(p) for p in sent]
    assert isinstance(event, TokensReserved) and event.job_id == UUID(int=7)
    assert event.payload.amount == 10
    assert await sql("SELECT count(*) FROM outbox WHERE published_at IS NULL") == [(0,)]


# --- pricing ---------------------------------------------------------------------------------


async def test_price_is_fixed_when_the_hold_is_made(saga: Any, outbox: Any, sql: Any) -> None:
    await saga.grant("u1", 1000)
    req = saga.requested(outputs=2, width=2048, height=1024, quality="hd")
    await saga.reserve(req)
    [reserved] = of(TokensReserved, await outbox())
    assert reserved.payload.amount == 2 * 30  # 10 x (2048x1024 / 1024^2) x 1.5
    await sql("UPDATE prices SET tokens_per_output = 99 WHERE model = 'mock'")
    await saga.settle(saga.completed(req, JobStatus.SUCCEEDED, 2))
    [settled] = of(TokensSettled, await outbox())
    assert settled.payload.charged == 60
    await saga.assert_reconciles()


async def test_app_override_and_unknown_model(saga: Any, outbox: Any, sql: Any) -> None:
    await saga.grant("u1", 100)
    await sql(
        "INSERT INTO prices (app_id, model, tokens_per_output, hd_multiplier)"
        " VALUES (:a, 'mock', 3, 2)",
        a=saga.app_id,
    )
    await saga.reserve(saga.requested(quality="hd"), saga.requested(model="nope"))
    reserved, rejected = of(TokensReserved, await outbox()), of(TokensRejected, await outbox())
    assert [r.payload.amount for r in reserved] == [6]
    assert [r.payload.reason for r in rejected] == [RejectReason.UNKNOWN_MODEL]


# --- free quota ------------------------------------------------------------------------------


async def test_free_quota_is_used_first_then_tokens_then_quota_exceeded(
    saga: Any, outbox: Any, sql: Any, make_uow: Any
) -> None:
    await settings(sql, saga.app_id, free_daily_quota=3)
    await saga.grant("u1", 10)
    jobs = [saga.requested(outputs=2), saga.requested(), saga.requested(), saga.requested()]
    await saga.reserve(*jobs)
    published = await outbox()
    reserved = of(TokensReserved, published)
    assert [(r.payload.amount, r.payload.free_quota_used) for r in reserved] == [
        (0, True), (0, True), (10, False)
    ]  # fmt: skip
    [rejected] = of(TokensRejected, published)
    assert rejected.payload.reason is RejectReason.QUOTA_EXCEEDED
    assert (rejected.payload.balance, rejected.payload.required) == (0, 10)
    async with make_uow() as uow:
        balance = await services.get_balance(uow, app_id=saga.app_id, user_id="u1")
    assert (balance.free_quota_left, balance.free_quota_per_day) == (0, 3)

    # The 2-output free job delivers one output, the other free job fails: 2 outputs come back.
    await saga.settle(saga.completed(jobs[0], JobStatus.SUCCEEDED, 1))
    await saga.settle(saga.completed(jobs[1], JobStatus.FAILED, 0))
    async with make_uow() as uow:
        balance = await services.get_balance(uow, app_id=saga.app_id, user_id="u1")
    assert balance.free_quota_left == 2
    settled = of(TokensSettled, await outbox())
    assert [(s.payload.outcome, s.payload.charged) for s in settled] == [
        ("posted", 0), ("voided", 0)
    ]  # fmt: skip
    assert await saga.funds() == (10, 10)
    await saga.assert_reconciles()


async def test_yesterdays_usage_does_not_count(saga: Any, outbox: Any, sql: Any) -> None:
    await settings(sql, saga.app_id, free_daily_quota=1)
    await sql(
        "INSERT INTO quota_usage VALUES (:a, 'u1', (now() AT TIME ZONE 'UTC')::date - 1, 1)",
        a=saga.app_id,
    )
    await saga.reserve(saga.requested())
    [reserved] = of(TokensReserved, await outbox())
    assert reserved.payload.free_quota_used


# --- grant expiry ----------------------------------------------------------------------------


async def expire_now(make_uow: Any) -> int:
    async with make_uow() as uow:
        written = await sweeps.expire_lots(uow, limit=100)
        await uow.commit()
    return written


async def test_spending_draws_from_the_soonest_expiring_grant_and_expiry_takes_the_rest(
    saga: Any, sql: Any, make_uow: Any
) -> None:
    soon = await saga.grant("u1", 50, expires_at=FUTURE)
    await saga.grant("u1", 100)
    req = saga.requested(outputs=3)
    await saga.reserve(req)
    await saga.settle(saga.completed(req, JobStatus.SUCCEEDED, 3))
    assert await sql(
        "SELECT remaining FROM grant_lots WHERE id = :id", id=soon.transfer_id
    ) == [(20,)]  # fmt: skip
    await sql(
        "UPDATE grant_lots SET expires_at = now() - interval '1 second'"
        " WHERE expires_at IS NOT NULL"
    )
    assert await expire_now(make_uow) == 1
    assert await expire_now(make_uow) == 0  # nothing left to expire: a second run is a no-op
    assert await saga.funds() == (100, 0)
    kinds = await sql("SELECT kind, amount FROM transfers WHERE kind = 'expiry'")
    assert [tuple(k) for k in kinds] == [("expiry", 20)]
    await saga.assert_reconciles()


async def test_expiry_waits_for_tokens_a_pending_hold_drew_from_the_lot(
    saga: Any, sql: Any, make_uow: Any, outbox: Any
) -> None:
    await settings(sql, saga.app_id, low_balance_threshold=25)
    await saga.grant("u1", 50, expires_at=FUTURE)
    await saga.grant("u1", 20)
    held, voided = saga.requested(outputs=3), saga.requested(outputs=1)
    await saga.reserve(held, voided)  # 40 reserved, drawn from the expiring lot
    await sql(
        "UPDATE grant_lots SET expires_at = now() - interval '1 second'"
        " WHERE expires_at IS NOT NULL"
    )
    await expire_now(make_uow)  # only the 10 unreserved tokens of that lot expire
    assert await saga.funds() == (60, 40)
    async with make_uow() as uow:  # what is left of it waits for the holds: not revisited
        assert await LedgerRepo(uow.session).expired_lot_accounts(100) == []
    await saga.settle(saga.completed(voided, JobStatus.FAILED, 0))
    await expire_now(make_uow)  # the released 10 expire on the next pass
    assert await saga.funds() == (50, 30)
    await saga.settle(saga.completed(held, JobStatus.SUCCEEDED, 3))
    assert await saga.funds() == (20, 0)
    assert await expire_now(make_uow) == 0
    await saga.assert_reconciles()
    # Each expiry pushed the available tokens from >= 25 to 20: two crossings, two signals.
    low = of(LowBalance, await outbox())
    assert [(e.payload.balance, e.payload.threshold) for e in low] == [(20, 25), (20, 25)]


# --- budgets ---------------------------------------------------------------------------------


async def test_budget_soft_then_hard_cap_announced_once_then_new_jobs_rejected(
    saga: Any, outbox: Any, sql: Any
) -> None:
    await settings(sql, saga.app_id, monthly_budget_usd=1, soft_cap_ratio=0.5)
    await saga.grant("u1", 100)
    jobs = [saga.requested() for _ in range(3)]
    await saga.reserve(*jobs)
    first = saga.completed(jobs[0], JobStatus.SUCCEEDED, 1, provider_cost_usd="0.6")
    await saga.settle(first)
    await saga.settle(first.model_copy(update={"event_id": jobs[1].event_id}))  # republished
    assert [e.payload.level for e in of(BudgetExceeded, await outbox())] == ["soft"]
    await saga.settle(saga.completed(jobs[1], JobStatus.SUCCEEDED, 1, provider_cost_usd="0.4"))
    await saga.settle(saga.completed(jobs[2], JobStatus.FAILED, 0, provider_cost_usd="0.1"))
    alerts = of(BudgetExceeded, await outbox())
    assert [(a.payload.level, a.payload.spent_usd) for a in alerts] == [
        ("soft", "0.600000"), ("hard", "1.000000")
    ]  # fmt: skip
    await saga.reserve(saga.requested())
    [rejected] = of(TokensRejected, await outbox())
    assert rejected.payload.reason is RejectReason.BUDGET_EXCEEDED
    assert await sql("SELECT spent_usd FROM app_spend") == [(Decimal("1.1"),)]
    await saga.assert_reconciles()


# --- cache hits --------------------------------------------------------------------------------


@pytest.mark.parametrize(("charge", "charged"), [(False, 0), (True, 20)])
async def test_cache_hits_are_charged_only_when_the_app_says_so(
    saga: Any, outbox: Any, charge: bool, charged: int
) -> None:
    await saga.grant("u1", 100)
    req = saga.requested(outputs=2, app=AppOptions(charge_cache_hits=charge))
    await saga.reserve(req)
    await saga.settle(saga.completed(req, JobStatus.SUCCEEDED, 2, cache_hit=True))
    [settled] = of(TokensSettled, await outbox())
    assert settled.payload.charged == charged
    assert await saga.funds() == (100 - charged, 0)


# --- low balance -----------------------------------------------------------------------------


async def test_low_balance_fires_once_when_available_drops_under_the_threshold(
    saga: Any, outbox: Any, sql: Any
) -> None:
    await settings(sql, saga.app_id, low_balance_threshold=50)
    await saga.grant("u1", 70)
    await saga.reserve(saga.requested(), saga.requested(), saga.requested())  # 70 → 40
    await saga.reserve(saga.requested())  # 40 → 30: already under, no new signal
    [low] = of(LowBalance, await outbox())
    assert (low.payload.user_id, low.payload.balance, low.payload.threshold) == ("u1", 40, 50)


# --- plans -------------------------------------------------------------------------------------


async def allocate(make_uow: Any, limit: int = 100) -> int:
    async with make_uow() as uow:
        run = await sweeps.allocate_plans(uow, limit=limit)
        await uow.commit()
    return run.users


async def test_plans_are_allocated_once_per_period_across_replicas_and_restarts(
    saga: Any, sql: Any, make_uow: Any
) -> None:
    await settings(sql, saga.app_id, plan="basic", monthly_allocations=True)
    await sql("UPDATE plans SET monthly_tokens = 700 WHERE plan = 'pro'")
    other = type(saga)(saga.make_uow, UUID(int=99))  # an app that opted out: no tokens
    await settings(sql, other.app_id, monthly_allocations=False)
    await other.reserve(other.requested("zed", plan=Plan.ENTERPRISE))
    unset = type(saga)(saga.make_uow, UUID(int=98))  # no settings row: the default is on
    await unset.grant("yan", 1)
    # A user's tier is the plan of their latest job (JobSpec.plan, "free" by default); a user
    # billing knows only from a grant falls back to the app's plan.
    await saga.reserve(
        saga.requested("ann", plan=Plan.PRO), saga.requested("bob", plan=Plan.ENTERPRISE),
        *(saga.requested(f"u{i}") for i in range(6)),
    )  # fmt: skip
    await saga.grant("carl", 1)
    assert await allocate(make_uow, limit=3) == 3  # a run that "crashes" after one batch
    done = await asyncio.gather(*(allocate(make_uow, limit=2) for _ in range(6)))  # replicas
    assert sum(done) == 7
    assert await allocate(make_uow) == 0  # restart: nothing left for this period
    assert await sql("SELECT count(*) FROM plan_allocations") == [(10,)]
    assert await other.funds("zed") == (0, 0)
    rows = await sql(
        "SELECT a.user_id, t.amount FROM transfers t JOIN accounts a"
        " ON a.id = t.credit_account_id WHERE t.kind = 'plan_allocation'"
    )
    # yan's app has no settings row: the free plan, 0 tokens (recorded, no transfer).
    assert {r[0]: r[1] for r in rows} == {"ann": 700, "bob": 10000, "carl": 500}
    assert await sql("SELECT plan FROM plan_allocations WHERE user_id = 'yan'") == [("free",)]
    period = (await sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')"))[0][0]
    [(transfer_id,)] = await sql("SELECT transfer_id FROM plan_allocations WHERE user_id = 'ann'")
    assert transfer_id == plan_transfer_id(saga.app_id, "ann", period)
    expiry = (await sql("SELECT expires_at FROM grant_lots WHERE id = :id", id=transfer_id))[0][0]
    assert expiry.day == 1 and expiry > datetime.now(UTC)  # monthly tokens end with the month
    await saga.assert_reconciles()


# --- grants, batch grants, adjustments --------------------------------------------------------


async def test_batch_grant_is_all_or_nothing_and_replays(
    saga: Any, make_uow: Any, sql: Any
) -> None:
    lines = [
        services.GrantLine("a", 10, "promo", None),
        services.GrantLine("b", 20, "promo", FUTURE, TransferKind.BONUS),
        services.GrantLine("a", 5, "promo", None),
    ]

    async def batch(key: str, rows: list[services.GrantLine]) -> list[services.GrantResult]:
        async with make_uow() as uow:
            out = await services.grant_batch(
                uow, app_id=saga.app_id, lines=rows, idempotency_key=key
            )
            await uow.commit()
        return out

    first = await batch("k1", lines)
    assert [(r.funds.balance, r.replayed) for r in first] == [(10, False), (20, False), (15, False)]
    again = await batch("k1", lines)
    assert [r.transfer_id for r in again] == [r.transfer_id for r in first]
    assert all(r.replayed for r in again)
    with pytest.raises(services.ApiError) as conflict:
        await batch("k1", [*lines[:2], services.GrantLine("a", 6, "promo", None)])
    assert conflict.value.code == "idempotency_conflict"
    assert (await saga.funds("a"), await saga.funds("b")) == ((15, 0), (20, 0))
    kinds = await sql("SELECT kind, count(*) FROM transfers GROUP BY kind ORDER BY kind")
    assert [tuple(k) for k in kinds] == [("bonus", 1), ("grant", 2)]
    await saga.assert_reconciles()


async def test_adjustments_credit_and_debit_never_below_available(
    saga: Any, make_uow: Any, outbox: Any
) -> None:
    await saga.grant("u1", 30)
    await saga.reserve(saga.requested())  # 10 reserved: 20 available

    async def adjust(amount: int, key: str) -> services.GrantResult:
        async with make_uow() as uow:
            out = await services.adjust_tokens(
                uow, app_id=saga.app_id, user_id="u1", amount=amount, reason="fix",
                idempotency_key=key,
            )  # fmt: skip
            await uow.commit()
        return out

    with pytest.raises(services.ApiError) as refused:
        await adjust(-21, "d1")
    assert refused.value.status == 409 and refused.value.code == "insufficient_tokens"
    debit = await adjust(-20, "d2")
    assert (debit.funds.balance, debit.funds.reserved) == (10, 10)
    assert (await adjust(-20, "d2")).replayed
    credit = await adjust(5, "c1")
    assert credit.funds.balance == 15
    with pytest.raises(services.ApiError):
        await adjust(0, "z")
    assert await saga.funds() == (15, 10)
    await saga.assert_reconciles()


async def test_a_disabled_user_is_rejected_until_re_enabled(
    saga: Any, outbox: Any, make_uow: Any
) -> None:
    await saga.grant("u1", 100)

    async def disable(flag: bool) -> None:
        async with make_uow() as uow:
            await services.set_user_disabled(uow, app_id=saga.app_id, user_id="u1", disabled=flag)
            await uow.commit()

    await disable(True)
    await saga.reserve(saga.requested())
    [rejected] = of(TokensRejected, await outbox())
    assert rejected.payload.reason is RejectReason.USER_DISABLED
    await disable(False)
    await saga.reserve(saga.requested())
    assert len(of(TokensReserved, await outbox())) == 1
    assert await saga.funds() == (100, 10)
