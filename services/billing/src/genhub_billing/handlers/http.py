"""Internal HTTP API (docs/internal-apis.md): balances, grants, ledger, prices, reconcile."""

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from genhub_platform.deps import UowDep
from pydantic import BaseModel, ConfigDict, Field

from genhub_billing import services
from genhub_billing.adapters.ledger_repo import Funds
from genhub_billing.domain.ledger import MAX_AMOUNT, TransferKind, balance_change, user_account_id

router = APIRouter(prefix="/internal", tags=["billing"])

UserId = Annotated[str, Path(min_length=1, max_length=128)]


class FundsOut(BaseModel):
    balance: int
    reserved: int
    available: int

    @classmethod
    def of(cls, funds: Funds) -> "FundsOut":
        return cls(balance=funds.balance, reserved=funds.reserved, available=funds.available)


class BalanceOut(FundsOut):
    app_id: UUID
    user_id: str


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: "10", 10.0 and true are refused rather than coerced into a token amount.
    amount: int = Field(gt=0, le=MAX_AMOUNT, strict=True)
    reason: str = Field(min_length=1, max_length=256)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)


class GrantOut(FundsOut):
    transfer_id: UUID


class LedgerEntry(BaseModel):
    transfer_id: UUID
    kind: TransferKind
    direction: Literal["credit", "debit"]
    amount: int
    balance_change: int  # holds and voids move `reserved` only
    balance_after: int
    reserved_after: int
    available_after: int
    job_id: UUID | None
    reason: str | None
    created_at: datetime | None


class LedgerOut(BaseModel):
    entries: list[LedgerEntry]
    next_cursor: str | None


class PriceOut(BaseModel):
    model: str
    tokens_per_output: int


class PricesOut(BaseModel):
    prices: list[PriceOut]


class ProblemOut(BaseModel):
    subject: str
    subject_id: UUID
    account_id: UUID | None
    message: str


class ReconcileOut(BaseModel):
    ok: bool
    accounts_checked: int
    holds_checked: int
    faulty_accounts: list[UUID]
    problems: list[ProblemOut]


@router.get("/apps/{app_id}/users/{user_id}/balance")
async def get_balance(app_id: UUID, user_id: UserId, uow: UowDep) -> BalanceOut:
    funds = await services.get_funds(uow, app_id=app_id, user_id=user_id)
    return BalanceOut(app_id=app_id, user_id=user_id, **FundsOut.of(funds).model_dump())


@router.post("/apps/{app_id}/users/{user_id}/grants", status_code=201, response_model=GrantOut)
async def post_grant(app_id: UUID, user_id: UserId, body: GrantIn, uow: UowDep) -> JSONResponse:
    result = await services.grant_tokens(
        uow,
        app_id=app_id,
        user_id=user_id,
        amount=body.amount,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
    )
    await uow.commit()
    out = GrantOut(transfer_id=result.transfer_id, **FundsOut.of(result.funds).model_dump())
    # A replay answers exactly like the original; the header tells the two apart.
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Idempotent-Replayed": "true" if result.replayed else "false"},
    )


@router.get("/apps/{app_id}/users/{user_id}/ledger")
async def get_ledger(
    app_id: UUID,
    user_id: UserId,
    uow: UowDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> LedgerOut:
    page = await services.ledger_page(
        uow, app_id=app_id, user_id=user_id, limit=limit, cursor=cursor
    )
    account = user_account_id(app_id, user_id)
    entries = []
    for t in page.transfers:
        kind = TransferKind(t.kind)
        credited = t.credit_account_id == account
        entries.append(
            LedgerEntry(
                transfer_id=t.id,
                kind=kind,
                direction="credit" if credited else "debit",
                amount=t.amount,
                balance_change=balance_change(kind, t.amount, credited=credited),
                balance_after=t.balance_after,
                reserved_after=t.reserved_after,
                available_after=t.balance_after - t.reserved_after,
                job_id=t.job_id,
                reason=t.reason,
                created_at=t.created_at,
            )
        )
    return LedgerOut(entries=entries, next_cursor=page.next_cursor)


@router.get("/prices")
async def get_prices(uow: UowDep, app_id: UUID | None = None) -> PricesOut:
    listing = await services.price_list(uow, app_id=app_id)
    return PricesOut(prices=[PriceOut(model=m, tokens_per_output=t) for m, t in listing])


@router.get("/reconcile")
async def get_reconcile(uow: UowDep, app_id: UUID | None = None) -> ReconcileOut:
    report = await services.run_reconcile(uow, app_id=app_id)
    return ReconcileOut(
        ok=report.ok,
        accounts_checked=report.accounts_checked,
        holds_checked=report.holds_checked,
        faulty_accounts=report.faulty_accounts,
        problems=[ProblemOut(**asdict(p)) for p in report.problems],
    )
