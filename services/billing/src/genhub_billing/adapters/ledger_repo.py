"""SQL for the ledger. Every balance change is one conditional UPDATE … RETURNING, so the
database (row locks + CHECK constraints) keeps accounts consistent without Python-side locks.

Lock order, to stay free of deadlocks: the user account first, then the app's issuance account.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_billing.adapters.batch_sql import run
from genhub_billing.adapters.tables import (
    Account,
    AppSettings,
    GrantLot,
    Hold,
    Price,
    Rejection,
    Transfer,
)
from genhub_billing.domain import lots as lots_rules
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

    async def set_disabled(self, app_id: UUID, user_id: str, disabled: bool) -> None:
        await self.session.exec(
            update(Account)
            .where(
                col(Account.id) == user_account_id(app_id, user_id),
                col(Account.app_id) == app_id,
            )
            .values(disabled=disabled, updated_at=func.now())
        )

    async def is_disabled(self, app_id: UUID, user_id: str) -> bool:
        row = (
            await self.session.exec(
                select(Account.disabled).where(
                    Account.id == user_account_id(app_id, user_id), Account.app_id == app_id
                )
            )
        ).first()
        return bool(row)

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
        expires_at: datetime | None = None,
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
            expires_at=expires_at,
        )
        self.session.add(transfer)
        await self.session.flush()
        return transfer

    async def credit(
        self,
        *,
        transfer_id: UUID,
        app_id: UUID,
        user_id: str,
        amount: int,
        kind: TransferKind,
        reason: str | None,
        idempotency_key: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[Transfer, Funds]:
        """Credit a user from the app's issuance account and open a lot for it (grant, bonus,
        plan allocation, positive adjustment). The caller holds the user's row lock."""
        user = user_account_id(app_id, user_id)
        after = await self._move(user, balance=amount)
        await self._move(issuance_account_id(app_id), balance=-amount)
        transfer = await self._record(
            transfer_id=transfer_id,
            app_id=app_id,
            kind=kind,
            debit=issuance_account_id(app_id),
            credit=user,
            amount=amount,
            after=after,
            reason=reason,
            idempotency_key=idempotency_key,
            expires_at=expires_at,
        )
        self.session.add(
            GrantLot(
                id=transfer_id, app_id=app_id, account_id=user, amount=amount, remaining=amount,
                expires_at=expires_at,
            )
        )  # fmt: skip
        await self.session.flush()
        return transfer, after

    async def debit(
        self,
        *,
        transfer_id: UUID,
        app_id: UUID,
        user_id: str,
        amount: int,
        kind: TransferKind,
        reason: str | None,
        idempotency_key: str | None = None,
    ) -> tuple[Transfer, Funds] | None:
        """Take `amount` of a user's *available* tokens back to issuance (negative adjustment,
        expiry); None when they do not have that much. Consumes lots, soonest-expiring first."""
        user = user_account_id(app_id, user_id)
        after = await self._take_available(user, amount)
        if after is None:
            return None
        await self._move(issuance_account_id(app_id), balance=amount)
        await self.consume_lots(user, amount)
        transfer = await self._record(
            transfer_id=transfer_id,
            app_id=app_id,
            kind=kind,
            debit=user,
            credit=issuance_account_id(app_id),
            amount=amount,
            after=after,
            reason=reason,
            idempotency_key=idempotency_key,
        )
        return transfer, after

    async def _take_available(self, user: UUID, amount: int) -> Funds | None:
        """Lower a user's balance by `amount` only if that many tokens are available."""
        row = (
            await self.session.exec(
                update(Account)
                .where(
                    col(Account.id) == user,
                    col(Account.balance) - col(Account.reserved) >= amount,
                )
                .values(balance=col(Account.balance) - amount, updated_at=func.now())
                .returning(col(Account.balance), col(Account.reserved))
            )
        ).first()
        return Funds(row[0], row[1]) if row else None

    # --- lots ------------------------------------------------------------------------------

    async def lots(self, account_id: UUID) -> list[lots_rules.Lot]:
        """The account's open lots (the caller holds the account's row lock)."""
        rows = (
            await self.session.exec(
                select(GrantLot).where(GrantLot.account_id == account_id, GrantLot.remaining > 0)
            )
        ).all()
        return [
            lots_rules.Lot(lot.id, lot.remaining, lot.expires_at, lot.created_at or datetime.min)
            for lot in rows
        ]

    async def take_from_lots(self, taken: Sequence[tuple[UUID, int]]) -> None:
        if not taken:
            return
        await run(
            self.session,
            "UPDATE grant_lots g SET remaining = g.remaining - t.n"
            " FROM unnest(CAST(:ids AS uuid[]), CAST(:ns AS bigint[])) AS t(id, n)"
            " WHERE g.id = t.id",
            ids=[t[0] for t in taken],
            ns=[t[1] for t in taken],
        )

    async def consume_lots(self, account_id: UUID, amount: int) -> None:
        """Spend `amount` from the account's lots, soonest-expiring first."""
        if amount:
            await self.take_from_lots(lots_rules.consume(await self.lots(account_id), amount))

    async def expired_lot_accounts(self, limit: int) -> list[tuple[UUID, UUID, str]]:
        """Accounts with something to expire now: [(account, app, user)].

        Expired lots come first in spending order, so pending holds cover them first: an
        account has tokens to expire exactly when its expired lots hold more than it reserved.
        Accounts whose expired tokens all wait for holds are left out (no endless revisits).
        """
        rows = await run(
            self.session,
            "SELECT a.id, a.app_id, a.user_id FROM grant_lots g"
            " JOIN accounts a ON a.id = g.account_id"
            " WHERE g.remaining > 0 AND g.expires_at <= now()"
            " GROUP BY a.id HAVING SUM(g.remaining) > a.reserved ORDER BY a.id LIMIT :limit",
            limit=limit,
        )
        return [(r[0], r[1], r[2]) for r in rows.all()]

    async def lock_account(self, account_id: UUID) -> Funds | None:
        """Lock an account row unless another transaction has it (then None: skip it)."""
        row = (
            await self.session.exec(
                select(Account.balance, Account.reserved)
                .where(Account.id == account_id)
                .with_for_update(skip_locked=True)
            )
        ).first()
        return Funds(row[0], row[1]) if row else None

    async def expire_lot(
        self, *, transfer_id: UUID, lot_id: UUID, app_id: UUID, user_id: str, amount: int
    ) -> Funds:
        """Move `amount` of an expired lot back to issuance (caller holds the account lock and
        computed an amount the account can spare: the conditions refuse anything else)."""
        user = user_account_id(app_id, user_id)
        after = await self._take_available(user, amount)
        if after is None:
            raise RuntimeError(f"expiry of {amount} would overdraw account {user}")
        await self._move(issuance_account_id(app_id), balance=amount)
        taken = await run(
            self.session,
            "UPDATE grant_lots SET remaining = remaining - :n"
            " WHERE id = :id AND remaining >= :n RETURNING id",
            n=amount,
            id=lot_id,
        )
        if taken.first() is None:
            raise RuntimeError(f"lot {lot_id} holds less than {amount}")
        await self._record(
            transfer_id=transfer_id,
            app_id=app_id,
            kind=TransferKind.EXPIRY,
            debit=user,
            credit=issuance_account_id(app_id),
            amount=amount,
            after=after,
            reason=f"grant {lot_id} expired",
        )
        return after

    # --- plans -----------------------------------------------------------------------------

    async def users_without_allocation(
        self, period: str, limit: int
    ) -> list[tuple[UUID, str, str, int]]:
        """Users of apps with monthly allocations on (the default: an app without a settings
        row has them) not yet allocated for `period`, locked (SKIP LOCKED: replicas split the
        work): [(app, user, effective plan, monthly tokens)]."""
        rows = await run(
            self.session,
            "SELECT a.app_id, a.user_id, COALESCE(a.plan, s.plan, 'free'),"
            " COALESCE(p.monthly_tokens, 0)"
            " FROM accounts a LEFT JOIN app_settings s ON s.app_id = a.app_id"
            " LEFT JOIN plans p ON p.plan = COALESCE(a.plan, s.plan, 'free')"
            " WHERE a.kind = 'user' AND COALESCE(s.monthly_allocations, true)"
            " AND NOT EXISTS (SELECT 1 FROM plan_allocations pa"
            " WHERE pa.app_id = a.app_id AND pa.user_id = a.user_id AND pa.period = :period)"
            " ORDER BY a.id LIMIT :limit FOR UPDATE OF a SKIP LOCKED",
            period=period,
            limit=limit,
        )
        return [(r[0], r[1], r[2], int(r[3])) for r in rows.all()]

    async def record_allocation(
        self,
        app_id: UUID,
        user_id: str,
        period: str,
        plan: str,
        amount: int,
        transfer_id: UUID | None,
    ) -> bool:
        """The once-per-period guard: False when this (app, user, month) was already done."""
        row = await run(
            self.session,
            "INSERT INTO plan_allocations (app_id, user_id, period, plan, transfer_id, amount)"
            " VALUES (:app, :user, :period, :plan, :transfer, :amount)"
            " ON CONFLICT DO NOTHING RETURNING period",
            app=app_id,
            user=user_id,
            period=period,
            plan=plan,
            transfer=transfer_id,
            amount=amount,
        )
        return row.first() is not None

    async def now(self) -> datetime:
        return (await run(self.session, "SELECT now()")).one()[0]  # type: ignore[no-any-return]

    async def period(self) -> str:
        row = await run(self.session, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')")
        return str(row.one()[0])

    # --- settings, quota, budgets ------------------------------------------------------------

    async def app_settings(self, app_id: UUID) -> AppSettings | None:
        return await self.session.get(AppSettings, app_id)

    async def quota_used_today(self, app_id: UUID, user_id: str) -> int:
        row = (
            await run(
                self.session,
                "SELECT used FROM quota_usage WHERE app_id = :app AND user_id = :user"
                " AND day = (now() AT TIME ZONE 'UTC')::date",
                app=app_id,
                user=user_id,
            )
        ).first()
        return int(row[0]) if row else 0

    async def refund_quota(self, hold: Hold, outputs: int) -> None:
        """Give back free outputs on the day the hold counted them (a later day has reset)."""
        if outputs <= 0:
            return
        await run(
            self.session,
            "UPDATE quota_usage SET used = GREATEST(0, used - :n) WHERE app_id = :app"
            " AND user_id = :user"
            " AND day = (CAST(:created AS timestamptz) AT TIME ZONE 'UTC')::date",
            n=outputs,
            app=hold.app_id,
            user=hold.user_id,
            created=hold.created_at,
        )

    async def add_job_cost(
        self, job_id: UUID, app_id: UUID, cost: Decimal
    ) -> tuple[Decimal | None, str]:
        """Count a job's provider cost once; returns (the app's spend this month, or None when
        the job was already counted, and the month)."""
        period = await self.period()
        inserted = (
            await run(
                self.session,
                "INSERT INTO job_costs (job_id, app_id, period, cost_usd)"
                " VALUES (:job, :app, :period, :cost) ON CONFLICT DO NOTHING RETURNING job_id",
                job=job_id,
                app=app_id,
                period=period,
                cost=cost,
            )
        ).first()
        if inserted is None:
            return None, period
        spent = (
            await run(
                self.session,
                "INSERT INTO app_spend (app_id, period, spent_usd) VALUES (:app, :period, :cost)"
                " ON CONFLICT (app_id, period) DO UPDATE"
                " SET spent_usd = app_spend.spent_usd + excluded.spent_usd RETURNING spent_usd",
                app=app_id,
                period=period,
                cost=cost,
            )
        ).one()[0]
        return Decimal(spent), period

    async def first_budget_alert(self, app_id: UUID, period: str, level: str) -> bool:
        row = (
            await run(
                self.session,
                "INSERT INTO budget_alerts (app_id, period, level) VALUES (:app, :period, :level)"
                " ON CONFLICT DO NOTHING RETURNING level",
                app=app_id,
                period=period,
                level=level,
            )
        ).first()
        return row is not None

    async def spend(self, app_id: UUID) -> tuple[Decimal, str]:
        row = (
            await run(
                self.session,
                "SELECT COALESCE((SELECT spent_usd FROM app_spend WHERE app_id = :app"
                " AND period = p.period), 0), p.period"
                " FROM (SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') AS period) p",
                app=app_id,
            )
        ).one()
        return Decimal(row[0]), row[1]

    # --- holds -----------------------------------------------------------------------------

    async def lock_job(self, job_id: UUID) -> None:
        """Serialise work on one job across consumers/replicas until this transaction ends."""
        await run(self.session, "SELECT pg_advisory_xact_lock(:key)", key=advisory_lock_key(job_id))

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
            await self.consume_lots(hold.account_id, charged)
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

    async def finish_free_hold(self, hold: Hold, status: HoldStatus) -> None:
        """Settle a hold the free quota paid: no tokens were reserved, none move."""
        await self._finish(hold, status, posted_amount=0 if status is HoldStatus.POSTED else None)

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
            PriceEntry(p.model, p.tokens_per_output, p.app_id, p.hd_multiplier)
            for p in (await self.session.exec(query)).all()
        ]
