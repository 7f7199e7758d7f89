"""Set-based SQL for reserving a whole batch of jobs in one transaction.

Every statement takes column arrays (`unnest`), so a batch of 500 holds costs the same handful
of round trips as a batch of one: the jobs' advisory locks, the batch's context (clock, jobs
already decided, prices, apps), missing accounts, the account locks, today's quota usage (apps
with a free quota only) and one statement for all the writes. The reserve path's statements go
straight to asyncpg (`genhub_platform.db.Statement`, in the session's transaction). Lock order
(shared with the rest of billing): the jobs' advisory locks in key order, then the user
accounts in id order.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from genhub_contracts import Envelope
from genhub_platform.db import Statement
from opentelemetry import propagate
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_billing.domain.ledger import AccountKind, advisory_lock_key
from genhub_billing.domain.pricing import PriceEntry


async def run(session: AsyncSession, sql: str, **params: Any) -> Any:
    """Execute one textual statement (sqlmodel's `exec` is typed for ORM statements only)."""
    return await session.exec(text(sql), params=params)  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class LockedAccount:
    id: UUID
    balance: int
    reserved: int
    plan: str | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class AppRow:
    app_id: UUID
    plan: str
    free_daily_quota: int
    low_balance_threshold: int
    monthly_budget_usd: Decimal | None
    soft_cap_ratio: Decimal
    spent_usd: Decimal


@dataclass(frozen=True, slots=True)
class Clock:
    now: datetime
    day: date
    period: str


_LOCK_JOBS = Statement(
    "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"
)


async def lock_jobs(session: AsyncSession, job_ids: Iterable[UUID]) -> None:
    """Serialise work on these jobs across consumers/replicas until the transaction ends."""
    await _LOCK_JOBS.execute(session, keys=sorted({advisory_lock_key(job) for job in job_ids}))


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What a batch is decided against, besides the locked accounts (read before any row lock)."""

    clock: Clock
    decided: set[UUID]  # jobs that already have a hold or a rejection: their outcome stands
    prices: list[PriceEntry]  # the default rules and the batch's apps' own
    apps: list[AppRow]  # settings (and this month's spend) of the apps that have any
    # Available tokens (balance - reserved) of the batch's user accounts that existed, read
    # without a lock: only a guess of the outcome (decisions use the locked rows).
    available: dict[UUID, int]


_ENSURE_ACCOUNTS_SQL = (
    "INSERT INTO accounts (id, app_id, user_id, kind)"
    " SELECT id, app, usr, CASE WHEN usr IS NULL THEN :issuance ELSE :user END"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:apps AS uuid[]), CAST(:users AS text[]))"
    " AS r(id, app, usr) ON CONFLICT DO NOTHING"
)

# One round trip, after the jobs' advisory locks (a statement of its own, so that this one's
# snapshot sees what a batch that held them committed): missing accounts created (in id order,
# as `ensure_accounts`), the transaction's clock (now(), its UTC day and month), the jobs already
# decided, the price rules, the apps' settings and the accounts' unlocked funds.
_CONTEXT = Statement(
    f"WITH created AS ({_ENSURE_ACCOUNTS_SQL})"  # noqa: S608 (constant text, no input)
    " SELECT now(), (now() AT TIME ZONE 'UTC')::date,"
    " to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'),"
    " ARRAY(SELECT job_id FROM holds WHERE job_id = ANY(CAST(:jobs AS uuid[]))"
    "  UNION ALL SELECT job_id FROM rejections WHERE job_id = ANY(CAST(:jobs AS uuid[]))),"
    " ARRAY(SELECT ROW(model, tokens_per_output, app_id, hd_multiplier) FROM prices"
    "  WHERE app_id IS NULL OR app_id = ANY(CAST(:app_ids AS uuid[]))),"
    " ARRAY(SELECT ROW(s.app_id, s.plan, s.free_daily_quota, s.low_balance_threshold,"
    "  s.monthly_budget_usd, s.soft_cap_ratio, COALESCE(sp.spent_usd, 0))"
    "  FROM app_settings s LEFT JOIN app_spend sp ON sp.app_id = s.app_id"
    "  AND sp.period = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')"
    "  WHERE s.app_id = ANY(CAST(:app_ids AS uuid[]))),"
    " ARRAY(SELECT ROW(id, balance - reserved) FROM accounts"
    "  WHERE id = ANY(CAST(:ids AS uuid[])) AND kind = :user)"
)


async def batch_context(
    session: AsyncSession,
    job_ids: Sequence[UUID],
    app_ids: Sequence[UUID],
    accounts: Iterable[tuple[UUID, UUID, str | None]],
) -> BatchContext:
    """The batch's context (see `_CONTEXT`); `accounts` as for `ensure_accounts`."""
    rows = sorted(set(accounts), key=lambda r: r[0])
    row = (
        await _CONTEXT.fetch(
            session,
            jobs=list(job_ids),
            app_ids=list(app_ids),
            ids=[r[0] for r in rows],
            apps=[r[1] for r in rows],
            users=[r[2] for r in rows],
            issuance=AccountKind.ISSUANCE.value,
            user=AccountKind.USER.value,
        )
    )[0]
    return BatchContext(
        Clock(row[0], row[1], row[2]),
        set(row[3]),
        [PriceEntry(*entry) for entry in row[4]],
        [AppRow(*app) for app in row[5]],
        dict(row[6]),
    )


_ENSURE_ACCOUNTS = Statement(_ENSURE_ACCOUNTS_SQL)


async def ensure_accounts(
    session: AsyncSession, accounts: Iterable[tuple[UUID, UUID, str | None]]
) -> None:
    """Create missing accounts [(id, app_id, user_id or None for issuance)], in id order."""
    rows = sorted(set(accounts), key=lambda r: r[0])
    await _ENSURE_ACCOUNTS.execute(
        session,
        ids=[r[0] for r in rows],
        apps=[r[1] for r in rows],
        users=[r[2] for r in rows],
        issuance=AccountKind.ISSUANCE.value,
        user=AccountKind.USER.value,
    )


_LOCK_ACCOUNTS = Statement(
    "SELECT id, balance, reserved, plan, disabled FROM accounts"
    " WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE"
)


async def lock_accounts(session: AsyncSession, ids: Iterable[UUID]) -> dict[UUID, LockedAccount]:
    rows = await _LOCK_ACCOUNTS.fetch(session, ids=sorted(set(ids)))
    return {r[0]: LockedAccount(r[0], r[1], r[2], r[3], r[4]) for r in rows}


_QUOTA_USED = Statement(
    "SELECT q.app_id, q.user_id, q.used FROM quota_usage q"
    " JOIN unnest(CAST(:apps AS uuid[]), CAST(:users AS text[])) AS p(app, usr)"
    " ON q.app_id = p.app AND q.user_id = p.usr WHERE q.day = :day"
)


async def quota_used(
    session: AsyncSession, day: date, pairs: Sequence[tuple[UUID, str]]
) -> dict[tuple[UUID, str], int]:
    if not pairs:
        return {}
    rows = await _QUOTA_USED.fetch(
        session, apps=[p[0] for p in pairs], users=[p[1] for p in pairs], day=day
    )
    return {(r[0], r[1]): r[2] for r in rows}


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: UUID
    transfer_id: UUID
    job_id: UUID
    app_id: UUID
    user_id: str
    account_id: UUID
    issuance_id: UUID
    model: str
    num_outputs: int
    amount: int
    free_outputs: int
    charge_cache_hits: bool
    balance_after: int
    reserved_after: int


@dataclass(frozen=True, slots=True)
class RejectionRow:
    job_id: UUID
    app_id: UUID
    user_id: str
    reason: str
    available: int | None
    required: int | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    topic: str
    key: bytes
    payload: bytes
    headers_json: str


@dataclass(frozen=True, slots=True)
class BatchWrites:
    """Everything a decided batch writes (the accounts are locked by then)."""

    deltas: dict[UUID, int]  # reserved added per account
    plans: dict[UUID, str]  # the user's tier as seen on this batch, where it changed
    holds: Sequence[HoldRow]
    rejections: Sequence[RejectionRow]
    day: date
    quota_added: dict[tuple[UUID, str], int]  # free outputs counted per (app, user) today
    outbox: Sequence[OutboxRow]


# All of a batch's writes in one statement (data-modifying CTEs over column arrays; an empty
# array writes nothing). The `balance - reserved >= delta` condition of the account update is
# the never-negative gate: if it refuses any row (it cannot while the rows are locked, unless
# the decision was wrong), the count returned is short and the batch rolls back.
_WRITE_BATCH = Statement(
    "WITH moved AS ("
    "  UPDATE accounts a SET reserved = a.reserved + d.delta,"
    "  plan = COALESCE(d.plan, a.plan), updated_at = now()"
    "  FROM unnest(CAST(:account_ids AS uuid[]), CAST(:deltas AS bigint[]),"
    "  CAST(:plans AS text[])) AS d(id, delta, plan)"
    "  WHERE a.id = d.id AND a.balance - a.reserved >= d.delta RETURNING a.id"
    "), new_holds AS ("
    "  INSERT INTO holds (id, job_id, app_id, user_id, account_id, model, num_outputs, amount,"
    "  free_outputs, charge_cache_hits, status, expires_at)"
    "  SELECT h.*, 'pending', now() + make_interval(secs => :ttl) FROM unnest("
    "  CAST(:hold_ids AS uuid[]), CAST(:hold_jobs AS uuid[]), CAST(:hold_apps AS uuid[]),"
    "  CAST(:hold_users AS text[]), CAST(:hold_accounts AS uuid[]), CAST(:models AS text[]),"
    "  CAST(:outputs AS int[]), CAST(:hold_amounts AS bigint[]), CAST(:free AS int[]),"
    "  CAST(:cache AS boolean[])) AS h"
    "), hold_transfers AS ("
    "  INSERT INTO transfers (id, app_id, kind, debit_account_id, credit_account_id, amount,"
    "  job_id, balance_after, reserved_after)"
    "  SELECT t.id, t.app, 'generation_hold', t.debit, t.credit, t.amount, t.job,"
    "  t.balance_after, t.reserved_after FROM unnest("
    "  CAST(:transfer_ids AS uuid[]), CAST(:transfer_apps AS uuid[]), CAST(:debits AS uuid[]),"
    "  CAST(:credits AS uuid[]), CAST(:transfer_amounts AS bigint[]),"
    "  CAST(:transfer_jobs AS uuid[]), CAST(:balances AS bigint[]),"
    "  CAST(:reserveds AS bigint[]))"
    "  AS t(id, app, debit, credit, amount, job, balance_after, reserved_after)"
    "), rejected AS ("
    "  INSERT INTO rejections (job_id, app_id, user_id, reason, available, required)"
    "  SELECT * FROM unnest(CAST(:rejected_jobs AS uuid[]), CAST(:rejected_apps AS uuid[]),"
    "  CAST(:rejected_users AS text[]), CAST(:reasons AS text[]),"
    "  CAST(:available AS bigint[]), CAST(:required AS bigint[])) ON CONFLICT DO NOTHING"
    "), quota AS ("
    "  INSERT INTO quota_usage (app_id, user_id, day, used)"
    "  SELECT app, usr, :day, n FROM unnest(CAST(:quota_apps AS uuid[]),"
    "  CAST(:quota_users AS text[]), CAST(:quota_counts AS int[])) AS q(app, usr, n)"
    "  ON CONFLICT (app_id, user_id, day) DO UPDATE SET used = quota_usage.used + excluded.used"
    "), queued AS ("
    "  INSERT INTO outbox (topic, key, payload, headers)"
    "  SELECT t, k, p, CAST(h AS jsonb) FROM unnest(CAST(:topics AS text[]),"
    "  CAST(:keys AS bytea[]), CAST(:payloads AS bytea[]), CAST(:headers AS text[]))"
    "  AS o(t, k, p, h)"
    ") SELECT count(*) FROM moved"
)


async def write_batch(session: AsyncSession, writes: BatchWrites, ttl_s: int) -> None:
    """Apply a decided batch: reservations and tiers, holds with their transfers (paid ones),
    rejections, free-quota usage and the outbox rows, in one statement."""
    ids = sorted(set(writes.deltas) | set(writes.plans))
    holds = writes.holds
    paid = [h for h in holds if h.amount > 0]
    quota_keys = sorted(writes.quota_added, key=lambda k: (str(k[0]), k[1]))
    rejections = writes.rejections
    rows = await _WRITE_BATCH.fetch(
        session,
        account_ids=ids,
        deltas=[writes.deltas.get(i, 0) for i in ids],
        plans=[writes.plans.get(i) for i in ids],
        ttl=float(ttl_s),
        hold_ids=[h.id for h in holds],
        hold_jobs=[h.job_id for h in holds],
        hold_apps=[h.app_id for h in holds],
        hold_users=[h.user_id for h in holds],
        hold_accounts=[h.account_id for h in holds],
        models=[h.model for h in holds],
        outputs=[h.num_outputs for h in holds],
        hold_amounts=[h.amount for h in holds],
        free=[h.free_outputs for h in holds],
        cache=[h.charge_cache_hits for h in holds],
        transfer_ids=[h.transfer_id for h in paid],
        transfer_apps=[h.app_id for h in paid],
        debits=[h.account_id for h in paid],
        credits=[h.issuance_id for h in paid],
        transfer_amounts=[h.amount for h in paid],
        transfer_jobs=[h.job_id for h in paid],
        balances=[h.balance_after for h in paid],
        reserveds=[h.reserved_after for h in paid],
        rejected_jobs=[r.job_id for r in rejections],
        rejected_apps=[r.app_id for r in rejections],
        rejected_users=[r.user_id for r in rejections],
        reasons=[r.reason for r in rejections],
        available=[r.available for r in rejections],
        required=[r.required for r in rejections],
        day=writes.day,
        quota_apps=[k[0] for k in quota_keys],
        quota_users=[k[1] for k in quota_keys],
        quota_counts=[writes.quota_added[k] for k in quota_keys],
        topics=[r.topic for r in writes.outbox],
        keys=[r.key for r in writes.outbox],
        payloads=[r.payload for r in writes.outbox],
        headers=[r.headers_json for r in writes.outbox],
    )
    if rows[0][0] != len(ids):
        raise RuntimeError("reservation refused by the never-negative guard; batch rolled back")


def outbox_rows(events: Iterable[Envelope[Any]]) -> list[OutboxRow]:
    """Outbox rows for events, with the current trace context (as OutboxMessage.from_event)."""
    trace_headers: dict[str, str] = {}
    propagate.inject(trace_headers)
    headers_by_type: dict[str, str] = {}
    rows = []
    for event in events:
        headers = headers_by_type.get(event.type)
        if headers is None:
            headers = json.dumps({**trace_headers, "event-type": event.type})
            headers_by_type[event.type] = headers
        rows.append(OutboxRow(event.TOPIC, event.key, event.model_dump_json().encode(), headers))
    return rows


@dataclass(frozen=True, slots=True)
class ExistingTransfer:
    id: UUID
    kind: str
    amount: int
    credit_account_id: UUID
    balance_after: int
    reserved_after: int


async def existing_transfers(
    session: AsyncSession, app_id: UUID, ids: Sequence[UUID]
) -> dict[UUID, ExistingTransfer]:
    rows = await run(
        session,
        "SELECT id, kind, amount, credit_account_id, balance_after, reserved_after"
        " FROM transfers WHERE app_id = :app AND id = ANY(CAST(:ids AS uuid[]))",
        app=app_id,
        ids=list(ids),
    )
    return {r[0]: ExistingTransfer(*r) for r in rows.all()}


@dataclass(frozen=True, slots=True)
class CreditRow:
    transfer_id: UUID
    account_id: UUID
    kind: str
    amount: int
    reason: str
    expires_at: datetime | None
    balance_after: int
    reserved_after: int


async def insert_credits(
    session: AsyncSession, app_id: UUID, issuance_id: UUID, rows: Sequence[CreditRow]
) -> None:
    """Many issuance → user credits at once: balances, transfers and lots (accounts locked)."""
    if not rows:
        return
    deltas: dict[UUID, int] = {}
    for r in rows:
        deltas[r.account_id] = deltas.get(r.account_id, 0) + r.amount
    deltas[issuance_id] = -sum(r.amount for r in rows)
    ids = sorted(deltas)
    await run(
        session,
        "UPDATE accounts a SET balance = a.balance + d.delta, updated_at = now()"
        " FROM unnest(CAST(:ids AS uuid[]), CAST(:deltas AS bigint[])) AS d(id, delta)"
        " WHERE a.id = d.id",
        ids=ids,
        deltas=[deltas[i] for i in ids],
    )
    columns = {
        "ids": [r.transfer_id for r in rows],
        "accounts": [r.account_id for r in rows],
        "kinds": [r.kind for r in rows],
        "amounts": [r.amount for r in rows],
        "reasons": [r.reason for r in rows],
        "expiries": [r.expires_at for r in rows],
        "balances": [r.balance_after for r in rows],
        "reserveds": [r.reserved_after for r in rows],
    }
    await run(
        session,
        "INSERT INTO transfers (id, app_id, kind, debit_account_id, credit_account_id, amount,"
        " reason, expires_at, balance_after, reserved_after)"
        " SELECT t.id, :app, t.kind, :issuance, t.account, t.amount, t.reason, t.expires_at,"
        " t.balance_after, t.reserved_after FROM unnest(CAST(:ids AS uuid[]),"
        " CAST(:accounts AS uuid[]), CAST(:kinds AS text[]), CAST(:amounts AS bigint[]),"
        " CAST(:reasons AS text[]), CAST(:expiries AS timestamptz[]), CAST(:balances AS bigint[]),"
        " CAST(:reserveds AS bigint[]))"
        " AS t(id, account, kind, amount, reason, expires_at, balance_after, reserved_after)",
        app=app_id,
        issuance=issuance_id,
        **columns,
    )
    await run(
        session,
        "INSERT INTO grant_lots (id, app_id, account_id, amount, remaining, expires_at)"
        " SELECT l.id, :app, l.account, l.amount, l.amount, l.expires_at"
        " FROM unnest(CAST(:ids AS uuid[]), CAST(:accounts AS uuid[]),"
        " CAST(:amounts AS bigint[]), CAST(:expiries AS timestamptz[]))"
        " AS l(id, account, amount, expires_at)",
        app=app_id,
        ids=columns["ids"],
        accounts=columns["accounts"],
        amounts=columns["amounts"],
        expiries=columns["expiries"],
    )
