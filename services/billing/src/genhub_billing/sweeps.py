"""Periodic ledger work: expiring grant lots and allocating plan tokens.

Both are safe with several billing replicas and after a crash mid-run: each unit of work locks
the accounts it touches with `SKIP LOCKED` (replicas share the work instead of doing it twice),
and every transfer it writes has a deterministic id, backed by a primary key (a plan allocation
row per user and month; an expiry id per lot and remaining amount), so a repeat changes nothing.
"""

import logging
from dataclasses import dataclass

from genhub_platform.uow import UnitOfWork

from genhub_billing.adapters.ledger_repo import LedgerRepo
from genhub_billing.domain import lots, plans
from genhub_billing.domain.ledger import TransferKind, expiry_transfer_id, plan_transfer_id
from genhub_billing.services import publish_low_balance_if_crossed

log = logging.getLogger(__name__)


async def expire_lots(uow: UnitOfWork, *, limit: int) -> int:
    """Expire what is left of expired grant lots (their unreserved part); returns how many
    expiry transfers it wrote. Each one moves tokens user → issuance (kind `expiry`)."""
    repo = LedgerRepo(uow.session)
    now = await repo.now()
    written = 0
    for account_id, app_id, user_id in await repo.expired_lot_accounts(limit):
        funds = await repo.lock_account(account_id)
        if funds is None:
            continue  # another replica is on it
        settings = await repo.app_settings(app_id)
        threshold = settings.low_balance_threshold if settings else 0
        before = funds.available
        for lot, amount in lots.expirable(await repo.lots(account_id), funds.reserved, now):
            after = await repo.expire_lot(
                transfer_id=expiry_transfer_id(lot.id, lot.remaining),
                lot_id=lot.id,
                app_id=app_id,
                user_id=user_id,
                amount=amount,
            )
            log.info("expired %d tokens of lot %s (user %s)", amount, lot.id, user_id)
            written += 1
            funds = after
        publish_low_balance_if_crossed(uow, app_id, user_id, before, funds.available, threshold)
    return written


@dataclass(frozen=True, slots=True)
class AllocationRun:
    period: str
    users: int  # users handled (allocation rows written)
    tokens: int  # tokens credited


async def allocate_plans(uow: UnitOfWork, *, limit: int) -> AllocationRun:
    """Credit this month's plan tokens to up to `limit` users that have not had them yet."""
    repo = LedgerRepo(uow.session)
    period = await repo.period()
    expires_at = plans.period_end(period)
    handled = tokens = 0
    for app_id, user_id, plan, monthly in await repo.users_without_allocation(period, limit):
        transfer_id = plan_transfer_id(app_id, user_id, period) if monthly > 0 else None
        if not await repo.record_allocation(app_id, user_id, period, plan, monthly, transfer_id):
            continue  # another replica (or an earlier run) did this user
        handled += 1
        if transfer_id is not None:
            await repo.credit(
                transfer_id=transfer_id,
                app_id=app_id,
                user_id=user_id,
                amount=monthly,
                kind=TransferKind.PLAN_ALLOCATION,
                reason=f"{plan} plan, {period}",
                expires_at=expires_at,
            )
            tokens += monthly
    return AllocationRun(period, handled, tokens)
