"""Gathers the facts reconciliation judges: per-account ledger sums and per-hold transfers."""

from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_billing.adapters.batch_sql import run
from genhub_billing.domain.holds import HoldStatus
from genhub_billing.domain.ledger import POSTING_KINDS, AccountKind
from genhub_billing.domain.reconcile import AccountFacts, HoldFacts

# Read in one REPEATABLE READ snapshot (see `collect`), so concurrent traffic cannot make the
# cached columns and the sums disagree mid-check.
_ACCOUNTS_SQL = """
SELECT a.id, a.app_id, a.user_id, a.kind, a.balance, a.reserved,
       COALESCE(cr.total, 0) - COALESCE(dr.total, 0) AS ledger_balance,
       COALESCE(h.total, 0) AS pending_holds,
       COALESCE(g.total, 0) AS lots_remaining
FROM accounts a
LEFT JOIN (SELECT credit_account_id AS id, SUM(amount) AS total FROM transfers
           WHERE kind IN ({posting}) GROUP BY credit_account_id) cr
       ON cr.id = a.id
LEFT JOIN (SELECT debit_account_id AS id, SUM(amount) AS total FROM transfers
           WHERE kind IN ({posting}) GROUP BY debit_account_id) dr
       ON dr.id = a.id
LEFT JOIN (SELECT account_id AS id, SUM(amount) AS total FROM holds
           WHERE status = 'pending' GROUP BY account_id) h
       ON h.id = a.id
LEFT JOIN (SELECT account_id AS id, SUM(remaining) AS total FROM grant_lots
           GROUP BY account_id) g
       ON g.id = a.id
WHERE (CAST(:app_id AS uuid) IS NULL OR a.app_id = CAST(:app_id AS uuid))
""".format(posting=", ".join(f"'{kind.value}'" for kind in sorted(POSTING_KINDS)))  # noqa: S608 (constants)

_HOLDS_SQL = """
SELECT h.id, h.job_id, h.account_id, h.status, h.amount, h.posted_amount,
       COUNT(t.id) FILTER (WHERE t.kind = 'generation_hold') AS hold_transfers,
       COALESCE(SUM(t.amount) FILTER (WHERE t.kind = 'generation_hold'), 0) AS hold_amount,
       COUNT(t.id) FILTER (WHERE t.kind = 'generation_post') AS post_transfers,
       COALESCE(SUM(t.amount) FILTER (WHERE t.kind = 'generation_post'), 0) AS post_amount,
       COUNT(t.id) FILTER (WHERE t.kind = 'generation_void') AS void_transfers
FROM holds h
LEFT JOIN transfers t ON t.job_id = h.job_id AND t.app_id = h.app_id
WHERE (CAST(:app_id AS uuid) IS NULL OR h.app_id = CAST(:app_id AS uuid))
GROUP BY h.id
"""


async def collect(
    session: AsyncSession, app_id: UUID | None = None
) -> tuple[list[AccountFacts], list[HoldFacts]]:
    await run(session, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    params = {"app_id": str(app_id) if app_id else None}
    accounts = [
        AccountFacts(
            account_id=r[0],
            app_id=r[1],
            user_id=r[2],
            kind=AccountKind(r[3]),
            balance=r[4],
            reserved=r[5],
            ledger_balance=int(r[6]),
            pending_holds=int(r[7]),
            lots_remaining=int(r[8]),
        )
        for r in (await run(session, _ACCOUNTS_SQL, **params)).all()
    ]
    holds = [
        HoldFacts(
            hold_id=r[0],
            job_id=r[1],
            account_id=r[2],
            status=HoldStatus(r[3]),
            amount=r[4],
            posted_amount=r[5],
            hold_transfers=r[6],
            hold_transfer_amount=int(r[7]),
            post_transfers=r[8],
            post_transfer_amount=int(r[9]),
            void_transfers=r[10],
        )
        for r in (await run(session, _HOLDS_SQL, **params)).all()
    ]
    return accounts, holds
