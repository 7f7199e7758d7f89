"""Reconciliation rules: cached columns against the ledger, signs, and hold final states.

The adapter gathers the facts with a few aggregate queries; these functions only judge them.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from genhub_billing.domain.holds import HoldStatus
from genhub_billing.domain.ledger import AccountKind


@dataclass(frozen=True, slots=True)
class AccountFacts:
    account_id: UUID
    app_id: UUID
    user_id: str | None
    kind: AccountKind
    balance: int  # cached column
    reserved: int  # cached column
    ledger_balance: int  # credits - debits over posting transfers
    pending_holds: int  # sum of pending holds on this account
    lots_remaining: int = 0  # sum of the account's grant lots' `remaining`


@dataclass(frozen=True, slots=True)
class HoldFacts:
    hold_id: UUID
    job_id: UUID
    account_id: UUID
    status: HoldStatus
    amount: int
    posted_amount: int | None
    hold_transfers: int  # how many generation_hold transfers the job has
    hold_transfer_amount: int
    post_transfers: int
    post_transfer_amount: int
    void_transfers: int


@dataclass(frozen=True, slots=True)
class Problem:
    subject: str  # "account" | "hold" | "app"
    subject_id: UUID
    account_id: UUID | None
    message: str


@dataclass(slots=True)
class ReconcileReport:
    accounts_checked: int = 0
    holds_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def faulty_accounts(self) -> list[UUID]:
        return sorted({p.account_id for p in self.problems if p.account_id is not None}, key=str)


def check_account(a: AccountFacts) -> list[str]:
    issues: list[str] = []
    if a.balance != a.ledger_balance:
        issues.append(f"balance {a.balance} != ledger sum {a.ledger_balance}")
    if a.reserved != a.pending_holds:
        issues.append(f"reserved {a.reserved} != pending holds {a.pending_holds}")
    if a.reserved < 0:
        issues.append(f"reserved is negative ({a.reserved})")
    if a.kind is AccountKind.USER and a.balance < a.reserved:
        issues.append(f"balance {a.balance} is below reserved {a.reserved}")
    if a.kind is AccountKind.ISSUANCE and a.reserved != 0:
        issues.append("an issuance account holds a reservation")
    if a.kind is AccountKind.USER and a.lots_remaining != a.balance:
        issues.append(f"grant lots hold {a.lots_remaining}, balance is {a.balance}")
    return issues


def check_hold(h: HoldFacts) -> list[str]:
    issues: list[str] = []
    if h.amount == 0:
        # Paid by the free quota: no tokens were held, so no transfer may exist for it.
        if h.hold_transfers or h.post_transfers or h.void_transfers:
            issues.append("a free-quota hold has ledger transfers")
        if h.status is HoldStatus.POSTED and h.posted_amount != 0:
            issues.append(f"a free-quota hold was posted at {h.posted_amount}")
        return issues
    if h.hold_transfers != 1 or h.hold_transfer_amount != h.amount:
        issues.append(
            f"expected one generation_hold transfer of {h.amount}, found {h.hold_transfers}"
            f" totalling {h.hold_transfer_amount}"
        )
    finals = h.post_transfers + h.void_transfers
    if h.status is HoldStatus.PENDING:
        if finals:
            issues.append("pending, yet it has a post or void transfer")
        if h.posted_amount is not None:
            issues.append("pending, yet it has a posted amount")
    elif h.status is HoldStatus.POSTED:
        if h.post_transfers != 1 or h.void_transfers != 0:
            issues.append(
                f"posted needs exactly one post and no void transfer "
                f"(found {h.post_transfers} post, {h.void_transfers} void)"
            )
        if h.posted_amount is None or not 0 <= h.posted_amount <= h.amount:
            issues.append(f"posted amount {h.posted_amount} outside 0..{h.amount}")
        elif h.post_transfer_amount != h.posted_amount:
            issues.append(f"post transfer {h.post_transfer_amount} != posted {h.posted_amount}")
    elif h.void_transfers != 1 or h.post_transfers != 0:
        issues.append(
            f"voided needs exactly one void and no post transfer "
            f"(found {h.post_transfers} post, {h.void_transfers} void)"
        )
    return issues


def reconcile(accounts: Iterable[AccountFacts], holds: Iterable[HoldFacts]) -> ReconcileReport:
    report = ReconcileReport()
    app_totals: dict[UUID, int] = defaultdict(int)
    app_issuance: dict[UUID, UUID] = {}
    for account in accounts:
        report.accounts_checked += 1
        app_totals[account.app_id] += account.balance
        if account.kind is AccountKind.ISSUANCE:
            app_issuance[account.app_id] = account.account_id
        for message in check_account(account):
            report.problems.append(
                Problem("account", account.account_id, account.account_id, message)
            )
    for hold in holds:
        report.holds_checked += 1
        for message in check_hold(hold):
            report.problems.append(Problem("hold", hold.hold_id, hold.account_id, message))
    # Double entry: every posting transfer credits what it debits, so each app sums to zero.
    for app_id, total in app_totals.items():
        if total != 0:
            report.problems.append(
                Problem("app", app_id, app_issuance.get(app_id), f"balances sum to {total}, not 0")
            )
    return report
