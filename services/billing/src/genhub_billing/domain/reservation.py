"""How a batch of job requests turns into holds and rejections (no I/O).

The adapter locks the affected accounts and loads their funds, today's free-quota usage, the
apps' prices and budgets; `decide` then walks the requests in delivery order, updating the
in-memory account state as it goes, exactly as if they had been reserved one by one. The
database still guards every result: the bulk UPDATE is conditional on `balance - reserved >=
delta` and CHECK constraints refuse overdrafts.
"""

from dataclasses import dataclass, field
from uuid import UUID

from genhub_contracts import RejectReason

from genhub_billing.domain import quota
from genhub_billing.domain.pricing import ImageSize, PriceBook, Quality, UnknownModelError


@dataclass(frozen=True, slots=True)
class Reject:
    reason: RejectReason
    message: str
    available: int | None = None
    required: int | None = None


def insufficient(available: int, price: int) -> Reject:
    return Reject(
        RejectReason.INSUFFICIENT_TOKENS,
        f"this job needs {price} tokens; {available} available",
        available=available,
        required=price,
    )


def quota_exceeded(available: int, price: int, per_day: int) -> Reject:
    return Reject(
        RejectReason.QUOTA_EXCEEDED,
        f"the free quota of {per_day} outputs a day is used up and this job needs {price}"
        f" tokens; {available} available",
        available=available,
        required=price,
    )


def unknown_model(model: str) -> Reject:
    return Reject(RejectReason.UNKNOWN_MODEL, f"no price for model {model!r}")


def user_disabled() -> Reject:
    return Reject(RejectReason.USER_DISABLED, "this user is disabled for this app")


def budget_exceeded() -> Reject:
    return Reject(RejectReason.BUDGET_EXCEEDED, "the app's monthly provider budget is exhausted")


@dataclass(frozen=True, slots=True)
class Request:
    job_id: UUID
    app_id: UUID
    user_id: str
    account_id: UUID
    model: str
    num_outputs: int
    size: ImageSize
    quality: Quality


@dataclass(frozen=True, slots=True)
class AppTerms:
    prices: PriceBook
    free_daily_quota: int = 0
    budget_blocked: bool = False
    low_balance_threshold: int = 0


@dataclass(slots=True)
class AccountState:
    balance: int
    reserved: int
    quota_used: int = 0
    disabled: bool = False
    reserved_before: int = field(init=False)
    quota_used_before: int = field(init=False)

    def __post_init__(self) -> None:
        self.reserved_before = self.reserved
        self.quota_used_before = self.quota_used

    @property
    def available(self) -> int:
        return self.balance - self.reserved


@dataclass(frozen=True, slots=True)
class Hold:
    amount: int  # tokens reserved (0 when the free quota pays)
    free_outputs: int
    available_after: int
    balance_after: int
    reserved_after: int


Decision = Hold | Reject


def decide(request: Request, terms: AppTerms, account: AccountState) -> Decision:
    """One request against the account's current state; mutates the state when it holds.

    Order: unknown model, disabled user, hard budget cap, free quota, tokens."""
    try:
        price = terms.prices.quote(
            request.model, request.num_outputs, request.size, request.quality
        )
    except UnknownModelError:
        return unknown_model(request.model)
    if account.disabled:
        return user_disabled()
    if terms.budget_blocked:
        return budget_exceeded()
    if quota.covers(terms.free_daily_quota, account.quota_used, request.num_outputs):
        account.quota_used += request.num_outputs
        return Hold(0, request.num_outputs, account.available, account.balance, account.reserved)
    if account.available >= price:
        account.reserved += price
        return Hold(price, 0, account.available, account.balance, account.reserved)
    if terms.free_daily_quota > 0:
        return quota_exceeded(account.available, price, terms.free_daily_quota)
    return insufficient(account.available, price)


def crossed_below(before: int, after: int, threshold: int) -> bool:
    """A low-balance signal fires when available funds drop from >= threshold to below it."""
    return threshold > 0 and before >= threshold > after
