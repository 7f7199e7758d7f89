"""Billing use cases: each takes a unit of work and input, applies the rules, and queues events.

They never commit: Kafka handlers are committed by the platform's EventConsumer, HTTP handlers
commit once at the end.
"""

import base64
import binascii
import logging
from dataclasses import dataclass
from uuid import UUID, uuid4

from genhub_contracts import (
    JobCompleted,
    JobRequested,
    JobStatus,
    TokensRejected,
    TokensReserved,
    TokensSettled,
)
from genhub_contracts.events import (
    TokensRejectedPayload,
    TokensReservedPayload,
    TokensSettledPayload,
)
from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_billing.adapters import reconcile_repo
from genhub_billing.adapters.ledger_repo import Funds, LedgerRepo
from genhub_billing.adapters.tables import Hold, Rejection, Transfer
from genhub_billing.domain import holds, reservation
from genhub_billing.domain.ledger import (
    TransferKind,
    grant_transfer_id,
    hold_id_for,
    job_transfer_id,
)
from genhub_billing.domain.pricing import PriceBook, UnknownModelError
from genhub_billing.domain.reconcile import ReconcileReport, reconcile

log = logging.getLogger(__name__)


# --- saga: reserve on job.requested ------------------------------------------------------------


async def reserve_for_job(uow: UnitOfWork, event: JobRequested, *, hold_ttl_s: int) -> None:
    """Hold the job's price, or reject it. Decided once per job: replays publish nothing."""
    if event.job_id is None:
        raise ValueError("job.requested without job_id")  # poison: the consumer dead-letters it
    job_id, app_id, spec = event.job_id, event.app_id, event.payload.spec
    repo = LedgerRepo(uow.session)

    await repo.lock_job(job_id)
    if await repo.hold_for_job(job_id) or await repo.rejection_for_job(job_id):
        # The first delivery's outcome is already in the outbox; publishing again would only
        # hand downstream a second, different event for the same decision.
        log.info("job %s already decided; replay ignored", job_id)
        return

    account_id = await repo.ensure_accounts(app_id, spec.user_id)
    book = PriceBook.for_app(await repo.price_entries(app_id), app_id)
    try:
        price = book.quote(spec.model, spec.input.num_outputs)
    except UnknownModelError:
        await _reject(uow, repo, event, reservation.unknown_model(spec.model))
        return

    # The conditional UPDATE is the gate: concurrent reservations cannot overdraw the account.
    after = await repo.try_reserve(account_id, price)
    if after is None:
        available = (await repo.funds(app_id, spec.user_id)).available
        await _reject(uow, repo, event, reservation.insufficient(available, price))
        return

    hold = await repo.create_hold(
        hold_id=hold_id_for(job_id),
        transfer_id=job_transfer_id(job_id, TransferKind.GENERATION_HOLD),
        job_id=job_id,
        app_id=app_id,
        user_id=spec.user_id,
        model=spec.model,
        num_outputs=spec.input.num_outputs,
        amount=price,
        after=after,
        ttl_s=hold_ttl_s,
    )
    uow.publish(
        TokensReserved.new(
            app_id=app_id,
            job_id=job_id,
            payload=TokensReservedPayload(spec=spec, hold_id=hold.id, amount=price),
        )
    )


async def _reject(
    uow: UnitOfWork, repo: LedgerRepo, event: JobRequested, rejection: reservation.Reject
) -> None:
    assert event.job_id is not None
    spec = event.payload.spec
    await repo.add_rejection(
        Rejection(
            job_id=event.job_id,
            app_id=event.app_id,
            user_id=spec.user_id,
            reason=rejection.reason.value,
            available=rejection.available,
            required=rejection.required,
        )
    )
    uow.publish(
        TokensRejected.new(
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
    )


# --- saga: settle on job.completed -------------------------------------------------------------


async def settle_job(uow: UnitOfWork, event: JobCompleted) -> None:
    """Post (succeeded) or void (failed, cancelled) the job's hold, exactly once."""
    if event.job_id is None:
        raise ValueError("job.completed without job_id")
    repo = LedgerRepo(uow.session)
    hold = await repo.hold_for_job(event.job_id, for_update=True)
    if hold is None or hold.app_id != event.app_id:
        log.warning("job %s completed but billing holds nothing for it", event.job_id)
        return
    if holds.HoldStatus(hold.status).is_final:
        log.info("hold for job %s already %s; left alone", event.job_id, hold.status)
        return
    payload = event.payload
    settlement = holds.settle(
        hold.amount, JobStatus(payload.status), len(payload.outputs), payload.requested_outputs
    )
    await _apply(uow, repo, hold, settlement)


async def expire_holds(uow: UnitOfWork, *, limit: int) -> int:
    """Void pending holds past their expiry; returns how many it voided."""
    repo = LedgerRepo(uow.session)
    expired = await repo.claim_expired_holds(limit)
    # Consistent account lock order across sweeper replicas: no deadlocks between them.
    for hold in sorted(expired, key=lambda h: (str(h.account_id), str(h.id))):
        log.info("hold for job %s expired; voiding", hold.job_id)
        await _apply(uow, repo, hold, holds.void(hold.amount))
    return len(expired)


async def _apply(
    uow: UnitOfWork, repo: LedgerRepo, hold: Hold, settlement: holds.Settlement
) -> None:
    holds.transition(holds.HoldStatus(hold.status), settlement.status)
    if settlement.outcome == "posted":
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
) -> GrantResult:
    repo = LedgerRepo(uow.session)
    await repo.ensure_accounts(app_id, user_id)
    # The user's row lock serialises grants to one user, so two requests with the same key
    # cannot both miss the lookup below.
    await repo.funds(app_id, user_id, for_update=True)
    if idempotency_key is None:
        transfer_id = uuid4()
    else:
        transfer_id = grant_transfer_id(app_id, user_id, idempotency_key)
        original = await repo.transfer(transfer_id, app_id=app_id)
        if original is not None:
            if original.amount != amount:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "This idempotency key was already used with a different amount.",
                    details={"original_amount": original.amount},
                )
            return GrantResult(
                original.id, Funds(original.balance_after, original.reserved_after), True
            )
    transfer, after = await repo.grant(
        transfer_id=transfer_id,
        app_id=app_id,
        user_id=user_id,
        amount=amount,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    return GrantResult(transfer.id, after, False)


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


async def price_list(uow: UnitOfWork, *, app_id: UUID | None) -> list[tuple[str, int]]:
    entries = await LedgerRepo(uow.session).price_entries(app_id)
    return PriceBook.for_app(entries, app_id).listing()


async def run_reconcile(uow: UnitOfWork, *, app_id: UUID | None = None) -> ReconcileReport:
    accounts, hold_facts = await reconcile_repo.collect(uow.session, app_id)
    return reconcile(accounts, hold_facts)
