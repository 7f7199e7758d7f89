"""SQL for the ledger. Every balance change is one conditional UPDATE … RETURNING, so the
database (row locks + CHECK constraints) keeps accounts consistent without Python-side locks.

Lock order, to stay free of deadlocks: the user account first, then the app's issuance account.
"""

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, or_, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_billing.adapters.tables import Account, Hold, Price, Rejection, Transfer
from genhub_billing.domain.holds import HoldStatus
from genhub_billing.domain.ledger import (
    AccountKind,
    TransferKind,
    advisory_lock_key,
    issuance_account_id,
    user_account_id,
)
from genhub_billing.domain.pricing import PriceEntry


@dataclass(frozen=True, slots=True)
class Funds:
    balance: int
    reserved: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class LedgerRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- accounts --------------------------------------------------------------------------

    async def ensure_accounts(self, app_id: UUID, user_id: str) -> UUID:
        """Create the app's issuance account and the user's account if missing (balance 0)."""
        rows = [
            {"id": issuance_account_id(app_id), "app_id": app_id, "user_id": None,
             "kind": AccountKind.ISSUANCE.value},
            {"id": user_account_id(app_id, user_id), "app_id": app_id, "user_id": user_id,
             "kind": AccountKind.USER.value},
        ]  # fmt: skip
        await self.session.exec(insert(Account).values(rows).on_conflict_do_nothing())
        return user_account_id(app_id, user_id)

    async def funds(self, app_id: UUID, user_id: str, *, for_update: bool = False) -> Funds:
        """A user's funds; an account that does not exist yet reads as zero."""
        query = select(Account.balance, Account.reserved).where(
            Account.id == user_account_id(app_id, user_id), Account.app_id == app_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self.session.exec(query)).first()
        return Funds(row[0], row[1]) if row else Funds(0, 0)

    async def try_reserve(self, account_id: UUID, amount: int) -> Funds | None:
        """Reserve `amount` if available; None when it is not. Atomic under concurrency."""
        row = (
            await self.session.exec(
                update(Account)
                .where(
                    col(Account.id) == account_id,
                    col(Account.balance) - col(Account.reserved) >= amount,
                )
                .values(reserved=col(Account.reserved) + amount, updated_at=func.now())
                .returning(col(Account.balance), col(Account.reserved))
            )
        ).first()
        return Funds(row[0], row[1]) if row else None

    async def _move(self, account_id: UUID, *, balance: int = 0, reserved: int = 0) -> Funds:
        """Add deltas to an account's cached columns; the CHECK constraints reject overdrafts."""
        row = (
            await self.session.exec(
                update(Account)
                .where(col(Account.id) == account_id)
                .values(
                    balance=col(Account.balance) + balance,
                    reserved=col(Account.reserved) + reserved,
                    updated_at=func.now(),
                )
                .returning(col(Account.balance), col(Account.reserved))
            )
        ).one()
        return Funds(row[0], row[1])

    # --- transfers -------------------------------------------------------------------------

    async def transfer(self, transfer_id: UUID, *, app_id: UUID) -> Transfer | None:
        return (
            await self.session.exec(
                select(Transfer).where(Transfer.id == transfer_id, Transfer.app_id == app_id)
            )
        ).first()

    async def _record(
        self,
        *,
        transfer_id: UUID,
        app_id: UUID,
        kind: TransferKind,
        debit: UUID,
        credit: UUID,
        amount: int,
        after: Funds,
        job_id: UUID | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> Transfer:
        transfer = Transfer(
            id=transfer_id,
            app_id=app_id,
            kind=kind.value,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            job_id=job_id,
            reason=reason,
            idempotency_key=idempotency_key,
            balance_after=after.balance,
            reserved_after=after.reserved,
        )
        self.session.add(transfer)
        await self.session.flush()
        return transfer

    async def grant(
        self,
        *,
        transfer_id: UUID,
        app_id: UUID,
        user_id: str,
        amount: int,
        reason: str,
        idempotency_key: str | None,
    ) -> tuple[Transfer, Funds]:
        """Credit a user from the app's issuance account (caller holds the user's row lock)."""
        user = user_account_id(app_id, user_id)
        after = await self._move(user, balance=amount)
        await self._move(issuance_account_id(app_id), balance=-amount)
        transfer = await self._record(
            transfer_id=transfer_id,
            app_id=app_id,
            kind=TransferKind.GRANT,
            debit=issuance_account_id(app_id),
            credit=user,
            amount=amount,
            after=after,
            reason=reason,
            idempotency_key=idempotency_key,
        )
        return transfer, after

    # --- holds -----------------------------------------------------------------------------

    async def lock_job(self, job_id: UUID) -> None:
        """Serialise work on one job across consumers/replicas until this transaction ends."""
        await self.session.exec(
            text("SELECT pg_advisory_xact_lock(:key)"), params={"key": advisory_lock_key(job_id)}
        )

    async def hold_for_job(self, job_id: UUID, *, for_update: bool = False) -> Hold | None:
        query = select(Hold).where(Hold.job_id == job_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def rejection_for_job(self, job_id: UUID) -> Rejection | None:
        return await self.session.get(Rejection, job_id)

    async def add_rejection(self, rejection: Rejection) -> None:
        await self.session.exec(
            insert(Rejection)
            .values(
                job_id=rejection.job_id,
                app_id=rejection.app_id,
                user_id=rejection.user_id,
                reason=rejection.reason,
                available=rejection.available,
                required=rejection.required,
            )
            .on_conflict_do_nothing()
        )

    async def create_hold(
        self,
        *,
        hold_id: UUID,
        transfer_id: UUID,
        job_id: UUID,
        app_id: UUID,
        user_id: str,
        model: str,
        num_outputs: int,
        amount: int,
        after: Funds,
        ttl_s: int,
    ) -> Hold:
        """Record a hold whose amount `try_reserve` already moved into `reserved`."""
        account = user_account_id(app_id, user_id)
        expires_at = (
            await self.session.exec(
                select(func.now() + func.make_interval(0, 0, 0, 0, 0, 0, ttl_s))
            )
        ).one()
        hold = Hold(
            id=hold_id,
            job_id=job_id,
            app_id=app_id,
            user_id=user_id,
            account_id=account,
            model=model,
            num_outputs=num_outputs,
            amount=amount,
            status=HoldStatus.PENDING.value,
            expires_at=expires_at,
        )
        self.session.add(hold)
        await self._record(
            transfer_id=transfer_id,
            app_id=app_id,
            kind=TransferKind.GENERATION_HOLD,
            debit=account,
            credit=issuance_account_id(app_id),
            amount=amount,
            after=after,
            job_id=job_id,
        )
        return hold

    async def post_hold(self, hold: Hold, *, transfer_id: UUID, charged: int) -> Funds:
        """Charge `charged` from the hold and release all of its reservation."""
        issuance = issuance_account_id(hold.app_id)
        after = await self._move(hold.account_id, balance=-charged, reserved=-hold.amount)
        if charged:
            await self._move(issuance, balance=charged)
        await self._record(
            transfer_id=transfer_id,
            app_id=hold.app_id,
            kind=TransferKind.GENERATION_POST,
            debit=hold.account_id,
            credit=issuance,
            amount=charged,
            after=after,
            job_id=hold.job_id,
        )
        await self._finish(hold, HoldStatus.POSTED, posted_amount=charged)
        return after

    async def void_hold(self, hold: Hold, *, transfer_id: UUID) -> Funds:
        after = await self._move(hold.account_id, reserved=-hold.amount)
        await self._record(
            transfer_id=transfer_id,
            app_id=hold.app_id,
            kind=TransferKind.GENERATION_VOID,
            debit=hold.account_id,
            credit=issuance_account_id(hold.app_id),
            amount=hold.amount,
            after=after,
            job_id=hold.job_id,
        )
        await self._finish(hold, HoldStatus.VOIDED, posted_amount=None)
        return after

    async def _finish(self, hold: Hold, status: HoldStatus, *, posted_amount: int | None) -> None:
        # The `status = 'pending'` guard makes a double settlement fail loudly, never apply.
        result = await self.session.exec(
            update(Hold)
            .where(col(Hold.id) == hold.id, col(Hold.status) == HoldStatus.PENDING.value)
            .values(status=status.value, posted_amount=posted_amount, settled_at=func.now())
            .returning(col(Hold.settled_at))
        )
        settled_at = result.first()
        if settled_at is None:
            raise RuntimeError(f"hold {hold.id} was not pending")
        hold.status = status.value
        hold.posted_amount = posted_amount
        hold.settled_at = settled_at[0]

    async def claim_expired_holds(self, limit: int) -> list[Hold]:
        """Pending holds past their expiry, locked; replicas skip each other's rows."""
        return list(
            (
                await self.session.exec(
                    select(Hold)
                    .where(Hold.status == HoldStatus.PENDING.value, Hold.expires_at <= func.now())
                    .order_by(col(Hold.expires_at))
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
        )

    # --- reads -----------------------------------------------------------------------------

    async def ledger_page(
        self, app_id: UUID, user_id: str, *, limit: int, before_seq: int | None
    ) -> list[Transfer]:
        account = user_account_id(app_id, user_id)
        query = select(Transfer).where(
            Transfer.app_id == app_id,
            or_(
                col(Transfer.debit_account_id) == account,
                col(Transfer.credit_account_id) == account,
            ),
        )
        if before_seq is not None:
            query = query.where(col(Transfer.seq) < before_seq)
        query = query.order_by(col(Transfer.seq).desc()).limit(limit)
        return list((await self.session.exec(query)).all())

    async def price_entries(self, app_id: UUID | None) -> list[PriceEntry]:
        scope: ColumnElement[bool] = col(Price.app_id).is_(None)
        if app_id is not None:
            scope = or_(scope, col(Price.app_id) == app_id)
        query = select(Price).where(scope)
        return [
            PriceEntry(p.model, p.tokens_per_output, p.app_id)
            for p in (await self.session.exec(query)).all()
        ]
