"""Unit tests for billing's pure rules: pricing, settlement, hold states, ids, reconcile."""

from dataclasses import replace
from uuid import UUID, uuid4

import pytest
from genhub_billing.domain import holds, ledger, reservation
from genhub_billing.domain.holds import HoldAlreadySettledError, HoldStatus
from genhub_billing.domain.ledger import AccountKind, TransferKind
from genhub_billing.domain.pricing import PriceBook, PriceEntry, UnknownModelError
from genhub_billing.domain.reconcile import AccountFacts, HoldFacts, reconcile
from genhub_contracts import JobStatus, RejectReason

APP = UUID("00000000-0000-0000-0000-0000000000a1")
OTHER_APP = UUID("00000000-0000-0000-0000-0000000000a2")


# --- pricing ---------------------------------------------------------------------------------


def test_quote_is_tokens_per_output_times_outputs() -> None:
    book = PriceBook.for_app([PriceEntry("mock", 10)], APP)
    assert book.quote("mock", 1) == 10
    assert book.quote("mock", 4) == 40


def test_unknown_model_raises() -> None:
    with pytest.raises(UnknownModelError):
        PriceBook.for_app([PriceEntry("mock", 10)], APP).quote("sdxl", 1)


def test_app_override_wins_and_other_apps_overrides_are_ignored() -> None:
    entries = [
        PriceEntry("mock", 10),
        PriceEntry("mock", 7, app_id=APP),
        PriceEntry("fancy", 99, app_id=OTHER_APP),
    ]

    def listing(app: UUID | None) -> list[tuple[str, int]]:
        return [(e.model, e.tokens_per_output) for e in PriceBook.for_app(entries, app).listing()]

    assert listing(APP) == [("mock", 7)]
    assert listing(OTHER_APP) == [("fancy", 99), ("mock", 10)]
    assert listing(None) == [("mock", 10)]
    assert PriceBook.for_app(entries, APP).overridden == {"mock"}
    assert PriceBook.for_app(entries, None).overridden == set()


def test_quote_rejects_zero_outputs() -> None:
    with pytest.raises(ValueError):
        PriceBook.for_app([PriceEntry("mock", 10)], APP).quote("mock", 0)


# --- settlement ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "delivered", "requested", "charged"),
    [
        (40, 4, 4, 40),
        (40, 3, 4, 30),
        (40, 0, 4, 0),
        (10, 1, 3, 3),  # floor(10 / 3)
        (10, 2, 3, 6),  # floor(20 / 3)
        (40, 9, 4, 40),  # extra outputs never cost more than the hold
    ],
)
def test_post_charges_pro_rata_with_floor(
    held: int, delivered: int, requested: int, charged: int
) -> None:
    s = holds.post(held, delivered, requested)
    assert (s.outcome, s.charged, s.refunded) == ("posted", charged, held - charged)
    assert s.charged + s.refunded == held


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_failed_and_cancelled_void_everything(status: JobStatus) -> None:
    s = holds.settle(30, status, delivered=2, requested=3)
    assert (s.outcome, s.charged, s.refunded) == ("voided", 0, 30)
    assert s.status is HoldStatus.VOIDED


def test_succeeded_posts() -> None:
    assert holds.settle(30, JobStatus.SUCCEEDED, 3, 3).status is HoldStatus.POSTED


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.REJECTED])
def test_non_terminal_statuses_do_not_settle(status: JobStatus) -> None:
    with pytest.raises(ValueError):
        holds.settle(30, status, 0, 1)


def test_post_validates_arguments() -> None:
    with pytest.raises(ValueError):
        holds.post(10, 1, 0)
    with pytest.raises(ValueError):
        holds.post(-1, 1, 1)


# --- hold state machine ----------------------------------------------------------------------


def test_pending_moves_to_a_final_state_once() -> None:
    assert holds.transition(HoldStatus.PENDING, HoldStatus.POSTED) is HoldStatus.POSTED
    assert holds.transition(HoldStatus.PENDING, HoldStatus.VOIDED) is HoldStatus.VOIDED
    for final in (HoldStatus.POSTED, HoldStatus.VOIDED):
        for target in (HoldStatus.POSTED, HoldStatus.VOIDED):
            with pytest.raises(HoldAlreadySettledError):
                holds.transition(final, target)


def test_nothing_goes_back_to_pending() -> None:
    with pytest.raises(ValueError):
        holds.transition(HoldStatus.PENDING, HoldStatus.PENDING)


# --- ledger identities -----------------------------------------------------------------------


def test_ids_are_deterministic_and_scoped() -> None:
    job = uuid4()
    assert ledger.job_transfer_id(job, TransferKind.GENERATION_HOLD) == ledger.job_transfer_id(
        job, TransferKind.GENERATION_HOLD
    )
    assert ledger.job_transfer_id(job, TransferKind.GENERATION_HOLD) != ledger.job_transfer_id(
        job, TransferKind.GENERATION_POST
    )
    assert ledger.grant_transfer_id(APP, "u1", "k") != ledger.grant_transfer_id(
        OTHER_APP, "u1", "k"
    )
    assert ledger.grant_transfer_id(APP, "u1", "k") != ledger.grant_transfer_id(APP, "u2", "k")
    assert ledger.user_account_id(APP, "u1") != ledger.user_account_id(OTHER_APP, "u1")
    assert ledger.issuance_account_id(APP) != ledger.user_account_id(APP, "issuance")


def test_advisory_lock_key_fits_a_signed_bigint() -> None:
    for _ in range(100):
        key = ledger.advisory_lock_key(uuid4())
        assert -(2**63) <= key < 2**63


def test_balance_change_only_for_posting_transfers() -> None:
    assert ledger.balance_change(TransferKind.GRANT, 5, credited=True) == 5
    assert ledger.balance_change(TransferKind.GENERATION_POST, 5, credited=False) == -5
    assert ledger.balance_change(TransferKind.GENERATION_HOLD, 5, credited=False) == 0
    assert ledger.balance_change(TransferKind.GENERATION_VOID, 5, credited=False) == 0


def test_rejections_carry_numbers() -> None:
    r = reservation.insufficient(available=5, price=10)
    assert (r.reason, r.available, r.required) == (RejectReason.INSUFFICIENT_TOKENS, 5, 10)
    assert reservation.unknown_model("x").reason is RejectReason.UNKNOWN_MODEL


# --- reconciliation --------------------------------------------------------------------------


def _accounts(user_balance: int = 30, reserved: int = 10, **overrides: int) -> list[AccountFacts]:
    user = AccountFacts(
        account_id=ledger.user_account_id(APP, "u1"),
        app_id=APP,
        user_id="u1",
        kind=AccountKind.USER,
        balance=user_balance,
        reserved=reserved,
        ledger_balance=overrides.get("ledger_balance", user_balance),
        pending_holds=overrides.get("pending_holds", reserved),
        lots_remaining=overrides.get("lots_remaining", user_balance),
    )
    issuance = AccountFacts(
        account_id=ledger.issuance_account_id(APP),
        app_id=APP,
        user_id=None,
        kind=AccountKind.ISSUANCE,
        balance=-user_balance,
        reserved=0,
        ledger_balance=-user_balance,
        pending_holds=0,
    )
    return [user, issuance]


def _hold(status: HoldStatus, **kw: int | None) -> HoldFacts:
    base: dict[str, int | None] = {
        "hold_transfers": 1,
        "hold_transfer_amount": 10,
        "post_transfers": 1 if status is HoldStatus.POSTED else 0,
        "post_transfer_amount": 7 if status is HoldStatus.POSTED else 0,
        "void_transfers": 1 if status is HoldStatus.VOIDED else 0,
        "posted_amount": 7 if status is HoldStatus.POSTED else None,
    }
    base.update(kw)
    return HoldFacts(
        hold_id=uuid4(),
        job_id=uuid4(),
        account_id=ledger.user_account_id(APP, "u1"),
        status=status,
        amount=10,
        **base,  # type: ignore[arg-type]
    )


def test_consistent_ledger_reconciles() -> None:
    report = reconcile(_accounts(), [_hold(s) for s in HoldStatus])
    assert report.ok, report.problems
    assert (report.accounts_checked, report.holds_checked) == (2, 3)


def test_cached_balance_drift_names_the_account() -> None:
    report = reconcile(_accounts(ledger_balance=29), [])
    assert not report.ok
    assert report.faulty_accounts == [ledger.user_account_id(APP, "u1")]


def test_reserved_drift_and_overdraft_are_caught() -> None:
    messages = [p.message for p in reconcile(_accounts(5, 10, pending_holds=4), []).problems]
    assert any("reserved 10 != pending holds 4" in m for m in messages)
    assert any("below reserved" in m for m in messages)


def test_unbalanced_app_is_caught() -> None:
    user, issuance = _accounts()
    drifted = replace(issuance, balance=issuance.balance + 1, ledger_balance=issuance.balance + 1)
    report = reconcile([user, drifted], [])
    assert [p.subject for p in report.problems] == ["app"]
    assert report.faulty_accounts == [issuance.account_id]


@pytest.mark.parametrize(
    ("status", "kw"),
    [
        (HoldStatus.PENDING, {"void_transfers": 1}),
        (HoldStatus.POSTED, {"void_transfers": 1}),
        (HoldStatus.POSTED, {"post_transfers": 2}),
        (HoldStatus.POSTED, {"post_transfer_amount": 8}),
        (HoldStatus.POSTED, {"posted_amount": 11}),
        (HoldStatus.VOIDED, {"void_transfers": 0}),
        (HoldStatus.VOIDED, {"post_transfers": 1}),
        (HoldStatus.PENDING, {"hold_transfers": 0, "hold_transfer_amount": 0}),
    ],
)
def test_hold_not_in_exactly_one_final_state_is_caught(
    status: HoldStatus, kw: dict[str, int]
) -> None:
    report = reconcile([], [_hold(status, **kw)])
    assert not report.ok
    assert report.faulty_accounts == [ledger.user_account_id(APP, "u1")]
