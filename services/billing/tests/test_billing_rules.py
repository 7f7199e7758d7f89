"""Unit tests for the pricing, quota, grant-expiry, budget, plan and batch-reservation rules."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from genhub_billing.domain import budget, lots, plans, quota, reservation
from genhub_billing.domain.pricing import ImageSize, PriceBook, PriceEntry, price_per_output
from genhub_contracts import RejectReason

APP = UUID("00000000-0000-0000-0000-0000000000a1")
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

# --- pricing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "quality", "expected"),
    [
        (ImageSize(), "standard", 10),  # no size: the reference area
        (ImageSize(1024, 1024), "standard", 10),
        (ImageSize(512, 512), "standard", 10),  # smaller never costs less than base
        (ImageSize(2048, 2048), "standard", 40),
        (ImageSize(1536, 1024), "standard", 15),
        (ImageSize(1024, 1024), "hd", 15),
        (ImageSize(2048, 2048), "hd", 60),
        (ImageSize(1025, 1024), "standard", 11),  # rounded up to whole tokens
        (ImageSize(width=2048, aspect_ratio="2:1"), "standard", 20),  # height from the ratio
        (ImageSize(height=1024, aspect_ratio="16:9"), "standard", 18),  # ceil(10 * 16/9)
        (ImageSize(aspect_ratio="16:9"), "hd", 15),  # a ratio alone keeps the reference area
    ],
)
def test_price_per_output_follows_the_image_formula(
    size: ImageSize, quality: str, expected: int
) -> None:
    assert price_per_output(10, size, quality, Decimal("1.5")) == expected  # type: ignore[arg-type]


def test_quote_multiplies_outputs_and_uses_the_app_rule() -> None:
    entries = [PriceEntry("mock", 10), PriceEntry("mock", 4, APP, Decimal("2"))]
    assert PriceBook.for_app(entries, None).quote("mock", 3, ImageSize(2048, 1024), "hd") == 90
    assert PriceBook.for_app(entries, APP).quote("mock", 3, ImageSize(2048, 1024), "hd") == 48


# --- free quota ----------------------------------------------------------------------------


def test_quota_covers_whole_jobs_only_and_resets_by_utc_day() -> None:
    assert quota.covers(3, 0, 3) and quota.covers(3, 2, 1)
    assert not quota.covers(3, 2, 2)  # a job is free only if the quota pays all its outputs
    assert not quota.covers(0, 0, 1)
    assert quota.quota_left(3, 5) == 0
    late = datetime(2026, 11, 21, 23, 59, tzinfo=UTC)
    assert quota.utc_day(late) == date(2026, 11, 21)
    assert quota.utc_day(late + timedelta(minutes=1)) == date(2026, 11, 22)
    # 01:00 in UTC+2 is still the previous UTC day
    assert quota.utc_day(datetime(2026, 11, 22, 1, 0, tzinfo=UTC) - timedelta(hours=2)) == date(
        2026, 11, 21
    )
    with pytest.raises(ValueError):
        quota.utc_day(datetime(2026, 11, 21))  # naive


@pytest.mark.parametrize(
    ("free", "delivered", "back"), [(3, 3, 0), (3, 1, 2), (2, 0, 2), (2, 5, 0)]
)
def test_quota_refund_gives_back_undelivered_outputs(free: int, delivered: int, back: int) -> None:
    assert quota.refund(free, delivered) == back


# --- grant lots ----------------------------------------------------------------------------


def _lot(remaining: int, expires_in_h: float | None, age_h: float = 0) -> lots.Lot:
    expires = None if expires_in_h is None else T0 + timedelta(hours=expires_in_h)
    return lots.Lot(uuid4(), remaining, expires, T0 - timedelta(hours=age_h))


def test_spending_takes_the_soonest_expiring_lot_first() -> None:
    forever_old, forever_new = _lot(50, None, age_h=5), _lot(50, None, age_h=1)
    late, soon = _lot(30, 48), _lot(20, 2)
    taken = lots.consume([forever_new, late, forever_old, soon], 70)
    assert taken == [(soon.id, 20), (late.id, 30), (forever_old.id, 20)]
    with pytest.raises(ValueError):
        lots.consume([soon], 21)


def test_expiry_spares_what_pending_holds_were_drawn_from() -> None:
    expired, forever = _lot(100, -1), _lot(50, None)
    # 100 reserved: attributed to the expired lot first, so nothing of it may expire yet.
    assert lots.expirable([expired, forever], reserved=100, now=T0) == []
    assert lots.expirable([expired, forever], reserved=30, now=T0) == [(expired, 70)]
    assert lots.expirable([expired, forever], reserved=0, now=T0) == [(expired, 100)]
    # A lot that has not expired yet is never taken.
    assert lots.expirable([_lot(10, 1)], reserved=0, now=T0) == []


# --- budgets -------------------------------------------------------------------------------


def test_budget_levels() -> None:
    rule = budget.Budget(Decimal("10"), Decimal("0.8"))
    assert rule.levels_reached(Decimal("7.99")) == []
    assert rule.levels_reached(Decimal("8")) == ["soft"]
    assert rule.levels_reached(Decimal("10")) == ["soft", "hard"]
    assert not rule.blocks_new_jobs(Decimal("9.99")) and rule.blocks_new_jobs(Decimal("10"))
    assert budget.Budget(None).levels_reached(Decimal("1e9")) == []
    assert budget.period_of(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == "2026-12"


@pytest.mark.parametrize(("raw", "cost"), [("0.0123", "0.0123"), ("-1", "0"), ("x", "0"),
                                           ("NaN", "0"), ("Infinity", "0")])  # fmt: skip
def test_provider_cost_parsing_never_counts_garbage(raw: str, cost: str) -> None:
    assert budget.parse_cost(raw) == Decimal(cost)


# --- plans ---------------------------------------------------------------------------------


def test_plan_periods_and_effective_plan() -> None:
    assert plans.period_end("2026-11") == datetime(2026, 12, 1, tzinfo=UTC)
    assert plans.period_end("2026-12") == datetime(2027, 1, 1, tzinfo=UTC)
    assert plans.effective_plan(None, "pro") == "pro"
    assert plans.effective_plan("basic", "pro") == "basic"
    assert plans.DEFAULT_MONTHLY_TOKENS == {
        "free": 0, "basic": 500, "pro": 2000, "enterprise": 10000
    }  # fmt: skip


# --- batch reservation decisions ------------------------------------------------------------


def _request(outputs: int = 1, model: str = "mock") -> reservation.Request:
    return reservation.Request(uuid4(), APP, "u1", uuid4(), model, outputs, ImageSize(), "standard")


def _terms(**kw: object) -> reservation.AppTerms:
    return reservation.AppTerms(prices=PriceBook.for_app([PriceEntry("mock", 10)], APP), **kw)  # type: ignore[arg-type]


def test_decisions_in_order_never_overdraw() -> None:
    account = reservation.AccountState(balance=35, reserved=0)
    out = [reservation.decide(_request(), _terms(), account) for _ in range(5)]
    held = [d for d in out if isinstance(d, reservation.Hold)]
    assert [d.amount for d in held] == [10, 10, 10]
    assert [d.reserved_after for d in held] == [10, 20, 30]
    rejected = [d for d in out if isinstance(d, reservation.Reject)]
    assert [(r.reason, r.available, r.required) for r in rejected] == [
        (RejectReason.INSUFFICIENT_TOKENS, 5, 10)
    ] * 2
    assert account.reserved == 30 and account.reserved_before == 0


def test_free_quota_first_then_paid_then_quota_exceeded() -> None:
    account = reservation.AccountState(balance=10, reserved=0, quota_used=1)
    terms = _terms(free_daily_quota=3)
    first = reservation.decide(_request(2), terms, account)
    assert isinstance(first, reservation.Hold) and (first.amount, first.free_outputs) == (0, 2)
    paid = reservation.decide(_request(1), terms, account)
    assert isinstance(paid, reservation.Hold) and (paid.amount, paid.free_outputs) == (10, 0)
    refused = reservation.decide(_request(1), terms, account)
    assert isinstance(refused, reservation.Reject)
    assert refused.reason is RejectReason.QUOTA_EXCEEDED
    assert (refused.available, refused.required) == (0, 10)
    assert account.quota_used == 3


def test_budget_and_unknown_model_rejections() -> None:
    account = reservation.AccountState(balance=100, reserved=0)
    blocked = reservation.decide(_request(), _terms(budget_blocked=True), account)
    assert isinstance(blocked, reservation.Reject)
    assert blocked.reason is RejectReason.BUDGET_EXCEEDED
    disabled = reservation.AccountState(balance=100, reserved=0, disabled=True)
    refused = reservation.decide(_request(), _terms(free_daily_quota=5), disabled)
    assert isinstance(refused, reservation.Reject)
    assert refused.reason is RejectReason.USER_DISABLED
    assert disabled.quota_used == 0
    unknown = reservation.decide(_request(model="nope"), _terms(), account)
    assert isinstance(unknown, reservation.Reject)
    assert unknown.reason is RejectReason.UNKNOWN_MODEL
    assert account.reserved == 0


@pytest.mark.parametrize(
    ("before", "after", "threshold", "fires"),
    [(60, 40, 50, True), (50, 49, 50, True), (40, 30, 50, False), (60, 50, 50, False),
     (60, 0, 0, False)],
)  # fmt: skip
def test_low_balance_fires_on_crossing_only(
    before: int, after: int, threshold: int, fires: bool
) -> None:
    assert reservation.crossed_below(before, after, threshold) is fires
