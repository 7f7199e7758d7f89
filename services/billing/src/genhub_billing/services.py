"""Billing use cases: each takes a unit of work and input, applies the rules, and queues events.

They never commit: Kafka handlers are committed by the platform's EventConsumer, HTTP handlers
commit once at the end.
"""

import base64
import binascii
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from genhub_contracts import (
    BudgetExceeded,
    Envelope,
    JobCompleted,
    JobRequested,
    JobStatus,
    LowBalance,
    TokensRejected,
    TokensReserved,
    TokensSettled,
)
from genhub_contracts.events import (
    BudgetExceededPayload,
    LowBalancePayload,
    TokensRejectedPayload,
    TokensReservedPayload,
    TokensSettledPayload,
)
from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_billing.adapters import batch_sql, reconcile_repo
from genhub_billing.adapters.ledger_repo import Funds, LedgerRepo
from genhub_billing.adapters.tables import Hold, Transfer
from genhub_billing.domain import budget, holds, quota, reservation
from genhub_billing.domain.budget import Budget
from genhub_billing.domain.ledger import (
    TransferKind,
    adjustment_transfer_id,
    batch_grant_transfer_id,
    grant_transfer_id,
    hold_id_for,
    issuance_account_id,
    job_transfer_id,
    user_account_id,
)
from genhub_billing.domain.pricing import ImageSize, PriceBook, PriceEntry, UnknownModelError
from genhub_billing.domain.reconcile import ReconcileReport, reconcile

log = logging.getLogger(__name__)


# --- saga: reserve on job.requested ------------------------------------------------------------


async def reserve_for_job(uow: UnitOfWork, event: JobRequested, *, hold_ttl_s: int) -> None:
    """Hold one job's price, or reject it (a batch of one)."""
    await reserve_batch(uow, [event], hold_ttl_s=hold_ttl_s)


async def reserve_batch(
    uow: UnitOfWork, events: Sequence[JobRequested], *, hold_ttl_s: int
) -> None:
    """Hold or reject every job of a batch in this one transaction, with set-based SQL.

    Each job is decided once: replays (even with new event ids) of a decided job publish
    nothing, since the first outcome is already in the outbox. Within the batch, requests are
    decided in delivery order against the locked accounts, as if applied one by one.
    """
    firsts: dict[UUID, JobRequested] = {}
    for event in events:
        if event.job_id is None:
            raise ValueError("job.requested without job_id")  # poison: dead-lettered alone
        firsts.setdefault(event.job_id, event)
    if not firsts:
        return
    session = uow.session
    await batch_sql.lock_jobs(session, firsts)
    asked = {job_id: _request(e) for job_id, e in firsts.items()}
    all_apps = sorted({r.app_id for r in asked.values()}, key=str)
    # Everything that does not need the account locks is done first, in one statement (missing
    # accounts created, jobs already decided, clock, prices, apps, unlocked funds): concurrent
    # batches on a hot account then overlap this work instead of queueing behind the row lock.
    context = await batch_sql.batch_context(
        session,
        list(firsts),
        all_apps,
        [(issuance_account_id(a), a, None) for a in all_apps]
        + [(r.account_id, r.app_id, r.user_id) for r in asked.values()],
    )
    pending = [job_id for job_id in firsts if job_id not in context.decided]
    if context.decided:
        log.info("%d job(s) already decided; replays ignored", len(context.decided))
    if not pending:
        return

    todo = [firsts[job_id] for job_id in pending]
    requests = [asked[job_id] for job_id in pending]
    app_ids = sorted({r.app_id for r in requests}, key=str)
    now = context.clock
    apps = {row.app_id: row for row in context.apps}
    terms = {app: _terms(app, apps.get(app), context.prices) for app in app_ids}
    # `tokens.reserved` built and serialised before the row locks, for the expected outcome
    # (a paid hold of the quoted price, where the unlocked funds cover it); used only if the
    # decision turns out exactly so.
    speculative = _speculative_reserved(todo, requests, terms, context.available)
    locked = await batch_sql.lock_accounts(session, (r.account_id for r in requests))
    quota_pairs = sorted(
        {(r.app_id, r.user_id) for r in requests if terms[r.app_id].free_daily_quota > 0},
        key=lambda p: (str(p[0]), p[1]),
    )
    used = await batch_sql.quota_used(session, now.day, quota_pairs)
    owners = {r.account_id: (r.app_id, r.user_id) for r in requests}
    states = {
        account_id: reservation.AccountState(
            a.balance, a.reserved, used.get(owners[account_id], 0), a.disabled
        )
        for account_id, a in locked.items()
    }

    holds_out: list[batch_sql.HoldRow] = []
    rejections: list[batch_sql.RejectionRow] = []
    published: list[Envelope[Any] | batch_sql.OutboxRow] = []
    plans: dict[UUID, str] = {}
    for event, request in zip(todo, requests, strict=True):
        spec = event.payload.spec
        if locked[request.account_id].plan != spec.plan.value:
            plans[request.account_id] = spec.plan.value
        decision = reservation.decide(request, terms[request.app_id], states[request.account_id])
        if isinstance(decision, reservation.Reject):
            rejections.append(
                batch_sql.RejectionRow(
                    request.job_id, request.app_id, request.user_id, decision.reason.value,
                    decision.available, decision.required,
                )
            )  # fmt: skip
            published.append(_rejected_event(event, decision))
            continue
        hold_id, transfer_id = _hold_ids(request.job_id)
        holds_out.append(
            batch_sql.HoldRow(
                id=hold_id,
                transfer_id=transfer_id,
                job_id=request.job_id,
                app_id=request.app_id,
                user_id=request.user_id,
                account_id=request.account_id,
                issuance_id=issuance_account_id(request.app_id),
                model=request.model,
                num_outputs=request.num_outputs,
                amount=decision.amount,
                free_outputs=decision.free_outputs,
                charge_cache_hits=spec.app.charge_cache_hits,
                balance_after=decision.balance_after,
                reserved_after=decision.reserved_after,
            )
        )
        guess = speculative.get(request.job_id)
        if guess is not None and guess[0] == decision.amount and not decision.free_outputs:
            published.append(guess[1])
        else:
            published.append(
                _reserved_event(event, hold_id, decision.amount, decision.free_outputs > 0)
            )

    published.extend(_low_balance_events(requests, states, terms))
    events_left = iter(
        batch_sql.outbox_rows(p for p in published if not isinstance(p, batch_sql.OutboxRow))
    )
    writes = batch_sql.BatchWrites(
        deltas={
            a: st.reserved - st.reserved_before
            for a, st in states.items()
            if st.reserved_before != st.reserved
        },
        plans=plans,
        holds=holds_out,
        rejections=rejections,
        day=now.day,
        quota_added={
            owners[a]: st.quota_used - st.quota_used_before
            for a, st in states.items()
            if st.quota_used != st.quota_used_before
        },
        outbox=[p if isinstance(p, batch_sql.OutboxRow) else next(events_left) for p in published],
    )
    await batch_sql.write_batch(session, writes, hold_ttl_s)


def _reserved_event(event: JobRequested, hold_id: UUID, amount: int, free: bool) -> TokensReserved:
    return TokensReserved.new(
        app_id=event.app_id,
        job_id=event.job_id,
        payload=TokensReservedPayload(
            spec=event.payload.spec, hold_id=hold_id, amount=amount, free_quota_used=free
        ),
    )


def _hold_ids(job_id: UUID) -> tuple[UUID, UUID]:
    """The job's hold id and hold transfer id (deterministic: a retry makes the same)."""
    return hold_id_for(job_id), job_transfer_id(job_id, TransferKind.GENERATION_HOLD)


def _speculative_reserved(
    events: Sequence[JobRequested],
    requests: Sequence[reservation.Request],
    terms: dict[UUID, reservation.AppTerms],
    available: dict[UUID, int],
) -> dict[UUID, tuple[int, batch_sql.OutboxRow]]:
    """Outbox rows for `tokens.reserved` as a paid hold of the quoted price, per job whose
    account's unlocked funds cover it (with the batch's earlier jobs on that account)."""
    guesses: dict[UUID, tuple[int, TokensReserved]] = {}
    left = dict(available)
    for event, r in zip(events, requests, strict=True):
        t = terms[r.app_id]
        if t.free_daily_quota or t.budget_blocked:
            continue  # the outcome is less predictable there: built after the decision
        try:
            price = t.prices.quote(r.model, r.num_outputs, r.size, r.quality)
        except UnknownModelError:
            continue
        if left.get(r.account_id, 0) < price:
            continue  # most likely rejected: nothing built in vain
        left[r.account_id] -= price
        hold_id = _hold_ids(r.job_id)[0]
        guesses[r.job_id] = (price, _reserved_event(event, hold_id, price, False))
    rows = batch_sql.outbox_rows(event for _, event in guesses.values())
    return {job: (price, row) for (job, (price, _)), row in zip(guesses.items(), rows, strict=True)}


def _request(event: JobRequested) -> reservation.Request:
    assert event.job_id is not None
    spec = event.payload.spec
    gen = spec.input
    return reservation.Request(
        job_id=event.job_id,
        app_id=event.app_id,
        user_id=spec.user_id,
        account_id=user_account_id(event.app_id, spec.user_id),
        model=spec.model,
        num_outputs=gen.num_outputs,
        size=ImageSize(gen.width, gen.height, gen.aspect_ratio),
        quality=gen.quality,
    )


def _terms(
    app_id: UUID, row: batch_sql.AppRow | None, entries: Sequence[PriceEntry]
) -> reservation.AppTerms:
    book = PriceBook.for_app(entries, app_id)
    if row is None:
        return reservation.AppTerms(prices=book)
    budget = Budget(row.monthly_budget_usd, row.soft_cap_ratio)
    return reservation.AppTerms(
        prices=book,
        free_daily_quota=row.free_daily_quota,
        budget_blocked=budget.blocks_new_jobs(row.spent_usd),
        low_balance_threshold=row.low_balance_threshold,
    )


def _low_balance_events(
    requests: Sequence[reservation.Request],
    states: dict[UUID, reservation.AccountState],
    terms: dict[UUID, reservation.AppTerms],
) -> list[Envelope[Any]]:
    out: list[Envelope[Any]] = []
    seen: set[UUID] = set()
    for r in requests:
        if r.account_id in seen:
            continue
        seen.add(r.account_id)
        state, threshold = states[r.account_id], terms[r.app_id].low_balance_threshold
        before = state.balance - state.reserved_before
        if reservation.crossed_below(before, state.available, threshold):
            out.append(_low_balance(r.app_id, r.user_id, state.available, threshold))
    return out


def _low_balance(app_id: UUID, user_id: str, available: int, threshold: int) -> LowBalance:
    return LowBalance.new(
        app_id=app_id,
        payload=LowBalancePayload(user_id=user_id, balance=available, threshold=threshold),
    )


def _rejected_event(event: JobRequested, rejection: reservation.Reject) -> TokensRejected:
    spec = event.payload.spec
    return TokensRejected.new(
        app_id=event.app_id,
        job_id=event.job_id,
        payload=TokensRejectedPayload(
            user_id=spec.user_id,
            reason=rejection.reason,
            message=rejection.message,
            balance=rejection.available,
            required=rejection.required,
        ),
    )


# --- saga: settle on job.completed -------------------------------------------------------------


async def settle_job(uow: UnitOfWork, event: JobCompleted) -> None:
    """Post (succeeded) or void (failed, cancelled) the job's hold, exactly once."""
    if event.job_id is None:
        raise ValueError("job.completed without job_id")
    repo = LedgerRepo(uow.session)
    await _count_provider_cost(uow, repo, event)
    hold = await repo.hold_for_job(event.job_id, for_update=True)
    if hold is None or hold.app_id != event.app_id:
        log.warning("job %s completed but billing holds nothing for it", event.job_id)
        return
    if holds.HoldStatus(hold.status).is_final:
        log.info("hold for job %s already %s; left alone", event.job_id, hold.status)
        return
    payload = event.payload
    # A cache hit is free unless the app's options (snapshotted on the hold) say otherwise;
    # a free cache hit does not use up free quota either.
    free_of_charge = payload.cache_hit and not hold.charge_cache_hits
    delivered = 0 if free_of_charge else len(payload.outputs)
    settlement = holds.settle(
        hold.amount,
        JobStatus(payload.status),
        len(payload.outputs),
        payload.requested_outputs,
        free_of_charge=free_of_charge,
    )
    await _apply(uow, repo, hold, settlement, delivered=delivered)


async def _count_provider_cost(uow: UnitOfWork, repo: LedgerRepo, event: JobCompleted) -> None:
    """Add the job's provider cost to its app's monthly spend (once per job) and announce
    each budget level the spend reaches (once per app, month and level)."""
    assert event.job_id is not None
    cost = budget.parse_cost(event.payload.provider_cost_usd)
    if cost == 0:
        return
    spent, period = await repo.add_job_cost(event.job_id, event.app_id, cost)
    if spent is None:
        return  # this job's cost was already counted
    await announce_budget_levels(uow, repo, event.app_id, spent, period)


async def announce_budget_levels(
    uow: UnitOfWork, repo: LedgerRepo, app_id: UUID, spent: Decimal, period: str
) -> None:
    """Publish `budget.exceeded` for each level `spent` reaches, once per app, month, level
    (after a job's cost is counted, and after the app's budget settings change)."""
    settings = await repo.app_settings(app_id)
    if settings is None or settings.monthly_budget_usd is None:
        return
    rule = budget.Budget(settings.monthly_budget_usd, settings.soft_cap_ratio)
    for level in rule.levels_reached(spent):
        if await repo.first_budget_alert(app_id, period, level):
            log.warning("app %s reached its %s budget cap for %s", app_id, level, period)
            uow.publish(
                BudgetExceeded.new(
                    app_id=app_id,
                    payload=BudgetExceededPayload(
                        level=level,
                        spent_usd=str(spent),
                        budget_usd=str(settings.monthly_budget_usd),
                        period=period,
                    ),
                )
            )


async def expire_holds(uow: UnitOfWork, *, limit: int) -> int:
    """Void pending holds past their expiry; returns how many it voided."""
    repo = LedgerRepo(uow.session)
    expired = await repo.claim_expired_holds(limit)
    # Consistent account lock order across sweeper replicas: no deadlocks between them.
    for hold in sorted(expired, key=lambda h: (str(h.account_id), str(h.id))):
        log.warning("hold for job %s expired unsettled; voiding it", hold.job_id)
        await _apply(uow, repo, hold, holds.void(hold.amount), delivered=0)
    return len(expired)


async def _apply(
    uow: UnitOfWork, repo: LedgerRepo, hold: Hold, settlement: holds.Settlement, *, delivered: int
) -> None:
    holds.transition(holds.HoldStatus(hold.status), settlement.status)
    if hold.free_outputs:
        # A free-quota job: no tokens moved; give back the free outputs it did not deliver.
        delivered_free = delivered if settlement.outcome == "posted" else 0
        await repo.refund_quota(hold, quota.refund(hold.free_outputs, delivered_free))
    if hold.amount == 0:
        await repo.finish_free_hold(hold, settlement.status)
        after = await repo.funds(hold.app_id, hold.user_id)
    elif settlement.outcome == "posted":
        after = await repo.post_hold(
            hold,
            transfer_id=job_transfer_id(hold.job_id, TransferKind.GENERATION_POST),
            charged=settlement.charged,
        )
    else:
        after = await repo.void_hold(
            hold, transfer_id=job_transfer_id(hold.job_id, TransferKind.GENERATION_VOID)
        )
    uow.publish(
        TokensSettled.new(
            app_id=hold.app_id,
            job_id=hold.job_id,
            payload=TokensSettledPayload(
                user_id=hold.user_id,
                outcome=settlement.outcome,
                charged=settlement.charged,
                refunded=settlement.refunded,
                balance_after=after.balance,
            ),
        )
    )


# --- internal HTTP use cases -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantResult:
    transfer_id: UUID
    funds: Funds
    replayed: bool


async def grant_tokens(
    uow: UnitOfWork,
    *,
    app_id: UUID,
    user_id: str,
    amount: int,
    reason: str,
    idempotency_key: str | None,
    kind: TransferKind = TransferKind.GRANT,
    expires_at: datetime | None = None,
) -> GrantResult:
    repo = LedgerRepo(uow.session)
    await repo.ensure_accounts(app_id, user_id)
    # The user's row lock serialises grants to one user, so two requests with the same key
    # cannot both miss the lookup below.
    await repo.funds(app_id, user_id, for_update=True)
    transfer_id = (
        uuid4() if idempotency_key is None else grant_transfer_id(app_id, user_id, idempotency_key)
    )
    return await _credit_once(
        repo, transfer_id, app_id, user_id, amount, reason, idempotency_key, kind, expires_at
    )


async def _credit_once(
    repo: LedgerRepo,
    transfer_id: UUID,
    app_id: UUID,
    user_id: str,
    amount: int,
    reason: str,
    idempotency_key: str | None,
    kind: TransferKind,
    expires_at: datetime | None,
) -> GrantResult:
    """Credit unless this transfer id exists (then answer as the original did)."""
    original = await repo.transfer(transfer_id, app_id=app_id)
    if original is not None:
        return _replayed(original, amount, kind)
    transfer, after = await repo.credit(
        transfer_id=transfer_id,
        app_id=app_id,
        user_id=user_id,
        amount=amount,
        kind=kind,
        reason=reason,
        idempotency_key=idempotency_key,
        expires_at=expires_at,
    )
    return GrantResult(transfer.id, after, False)


def _replayed(original: Transfer, amount: int, kind: TransferKind) -> GrantResult:
    if original.amount != amount or original.kind != kind.value:
        raise ApiError(
            409,
            "idempotency_conflict",
            "This idempotency key was already used with a different amount or kind.",
            details={"original_amount": original.amount, "original_kind": original.kind},
        )
    return GrantResult(original.id, Funds(original.balance_after, original.reserved_after), True)


@dataclass(frozen=True, slots=True)
class GrantLine:
    user_id: str
    amount: int
    reason: str
    expires_at: datetime | None
    kind: TransferKind = TransferKind.GRANT


async def grant_batch(
    uow: UnitOfWork, *, app_id: UUID, lines: Sequence[GrantLine], idempotency_key: str | None
) -> list[GrantResult]:
    """All or nothing, in one transaction and a handful of set-based statements: the users'
    accounts are locked in id order, lines are credited in request order (each with its own
    lot), and a replayed key answers with the original results."""
    session = uow.session
    issuance = issuance_account_id(app_id)
    accounts = [user_account_id(app_id, line.user_id) for line in lines]
    await batch_sql.ensure_accounts(
        session,
        [(issuance, app_id, None)]
        + [(a, app_id, line.user_id) for a, line in zip(accounts, lines, strict=True)],
    )
    locked = await batch_sql.lock_accounts(session, accounts)
    ids = [
        uuid4() if idempotency_key is None else batch_grant_transfer_id(app_id, idempotency_key, i)
        for i in range(len(lines))
    ]
    existing = await batch_sql.existing_transfers(session, app_id, ids)
    if existing:
        return [_replayed_line(existing.get(i), line) for i, line in zip(ids, lines, strict=True)]
    funds = {a: Funds(row.balance, row.reserved) for a, row in locked.items()}
    credits: list[batch_sql.CreditRow] = []
    results: list[GrantResult] = []
    for transfer_id, account, line in zip(ids, accounts, lines, strict=True):
        after = Funds(funds[account].balance + line.amount, funds[account].reserved)
        funds[account] = after
        credits.append(
            batch_sql.CreditRow(
                transfer_id, account, line.kind.value, line.amount, line.reason, line.expires_at,
                after.balance, after.reserved,
            )
        )  # fmt: skip
        results.append(GrantResult(transfer_id, after, False))
    await batch_sql.insert_credits(session, app_id, issuance, credits)
    return results


def _replayed_line(original: batch_sql.ExistingTransfer | None, line: GrantLine) -> GrantResult:
    if original is None or original.amount != line.amount or original.kind != line.kind.value:
        raise ApiError(
            409,
            "idempotency_conflict",
            "This idempotency key was already used for a different batch.",
        )
    return GrantResult(original.id, Funds(original.balance_after, original.reserved_after), True)


async def adjust_tokens(
    uow: UnitOfWork,
    *,
    app_id: UUID,
    user_id: str,
    amount: int,
    reason: str,
    idempotency_key: str | None,
) -> GrantResult:
    """An admin correction: credit (amount > 0, a lot that never expires) or debit (< 0, from
    the available tokens only: 409 insufficient_tokens rather than going negative)."""
    if amount == 0:
        raise ApiError(422, "invalid_amount", "An adjustment must not be zero.")
    repo = LedgerRepo(uow.session)
    await repo.ensure_accounts(app_id, user_id)
    funds = await repo.funds(app_id, user_id, for_update=True)
    transfer_id = (
        uuid4()
        if idempotency_key is None
        else adjustment_transfer_id(app_id, user_id, idempotency_key)
    )
    if amount > 0:
        return await _credit_once(
            repo, transfer_id, app_id, user_id, amount, reason, idempotency_key,
            TransferKind.ADJUSTMENT, None,
        )  # fmt: skip
    original = await repo.transfer(transfer_id, app_id=app_id)
    if original is not None:
        if original.credit_account_id == user_account_id(app_id, user_id):
            raise ApiError(409, "idempotency_conflict", "This key was used for a credit.")
        return _replayed(original, -amount, TransferKind.ADJUSTMENT)
    done = await repo.debit(
        transfer_id=transfer_id,
        app_id=app_id,
        user_id=user_id,
        amount=-amount,
        kind=TransferKind.ADJUSTMENT,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    if done is None:
        raise ApiError(
            409,
            "insufficient_tokens",
            f"Cannot debit {-amount} tokens: {funds.available} available.",
            details={"available": funds.available, "required": -amount},
        )
    transfer, after = done
    await _maybe_low_balance(uow, repo, app_id, user_id, funds.available, after.available)
    return GrantResult(transfer.id, after, False)


async def _maybe_low_balance(
    uow: UnitOfWork, repo: LedgerRepo, app_id: UUID, user_id: str, before: int, after: int
) -> None:
    settings = await repo.app_settings(app_id)
    threshold = settings.low_balance_threshold if settings else 0
    publish_low_balance_if_crossed(uow, app_id, user_id, before, after, threshold)


def publish_low_balance_if_crossed(
    uow: UnitOfWork, app_id: UUID, user_id: str, before: int, after: int, threshold: int
) -> None:
    """`tokens.low_balance` when available tokens drop from >= threshold to below it."""
    if reservation.crossed_below(before, after, threshold):
        uow.publish(_low_balance(app_id, user_id, after, threshold))


async def set_user_disabled(uow: UnitOfWork, *, app_id: UUID, user_id: str, disabled: bool) -> None:
    """Disable (or re-enable) an end user: new jobs are rejected with `user_disabled`; jobs
    already held settle normally."""
    repo = LedgerRepo(uow.session)
    await repo.ensure_accounts(app_id, user_id)
    await repo.set_disabled(app_id, user_id, disabled)


@dataclass(frozen=True, slots=True)
class Balance:
    funds: Funds
    free_quota_per_day: int
    free_quota_left: int
    disabled: bool


async def get_balance(uow: UnitOfWork, *, app_id: UUID, user_id: str) -> Balance:
    repo = LedgerRepo(uow.session)
    funds = await repo.funds(app_id, user_id)
    settings = await repo.app_settings(app_id)
    per_day = settings.free_daily_quota if settings else 0
    used = await repo.quota_used_today(app_id, user_id) if per_day else 0
    disabled = await repo.is_disabled(app_id, user_id)
    return Balance(funds, per_day, quota.quota_left(per_day, used), disabled)


async def get_funds(uow: UnitOfWork, *, app_id: UUID, user_id: str) -> Funds:
    return await LedgerRepo(uow.session).funds(app_id, user_id)


@dataclass(frozen=True, slots=True)
class LedgerPage:
    transfers: list[Transfer]
    next_cursor: str | None


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        seq = int(value)
        if prefix != "seq" or seq < 1:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", "The cursor is not valid.") from None
    return seq


async def ledger_page(
    uow: UnitOfWork, *, app_id: UUID, user_id: str, limit: int, cursor: str | None
) -> LedgerPage:
    before = _decode_cursor(cursor) if cursor else None
    rows = await LedgerRepo(uow.session).ledger_page(
        app_id, user_id, limit=limit + 1, before_seq=before
    )
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1].seq) if more and page[-1].seq else None
    return LedgerPage(page, next_cursor)


async def price_book(uow: UnitOfWork, *, app_id: UUID | None) -> PriceBook:
    entries = await LedgerRepo(uow.session).price_entries(app_id)
    return PriceBook.for_app(entries, app_id)


async def run_reconcile(uow: UnitOfWork, *, app_id: UUID | None = None) -> ReconcileReport:
    accounts, hold_facts = await reconcile_repo.collect(uow.session, app_id)
    return reconcile(accounts, hold_facts)
