"""Internal HTTP API (docs/internal-apis.md): balances, grants (single, batch), adjustments,
ledger, settings, pricing rules, plans, prices, reconcile."""

from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from genhub_contracts import Plan
from genhub_platform.deps import UowDep
from genhub_platform.errors import ApiError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from genhub_billing import admin, services, sweeps
from genhub_billing.adapters.ledger_repo import Funds
from genhub_billing.adapters.tables import Price
from genhub_billing.domain.ledger import MAX_AMOUNT, TransferKind, balance_change, user_account_id
from genhub_billing.domain.pricing import MAX_TOKENS_PER_OUTPUT, ImageSize, price_per_output

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
    free_quota_left: int
    free_quota_per_day: int
    disabled: bool


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: bool = Field(strict=True)


Reason = Annotated[str, Field(min_length=1, max_length=256)]
IdempotencyKey = Annotated[str | None, Field(default=None, min_length=1, max_length=128)]


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: "10", 10.0 and true are refused rather than coerced into a token amount.
    amount: int = Field(gt=0, le=MAX_AMOUNT, strict=True)
    reason: Reason
    idempotency_key: IdempotencyKey = None
    expires_at: AwareDatetime | None = None
    kind: Literal["grant", "bonus"] = "grant"


class BatchGrantLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    amount: int = Field(gt=0, le=MAX_AMOUNT, strict=True)
    reason: Reason
    expires_at: AwareDatetime | None = None
    kind: Literal["grant", "bonus"] = "grant"


class BatchGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grants: list[BatchGrantLine] = Field(min_length=1, max_length=1000)
    idempotency_key: IdempotencyKey = None


class BatchGrantResult(FundsOut):
    user_id: str
    transfer_id: UUID


class BatchGrantOut(BaseModel):
    results: list[BatchGrantResult]


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, strict=True)
    reason: Reason
    idempotency_key: IdempotencyKey = None


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: Plan | None = None
    monthly_allocations: bool | None = Field(default=None, strict=True)
    free_daily_quota: int | None = Field(default=None, ge=0, le=10_000, strict=True)
    low_balance_threshold: int | None = Field(default=None, ge=0, le=MAX_AMOUNT, strict=True)
    monthly_budget_usd: Decimal | None = Field(default=None, ge=0, le=10**9, decimal_places=4)
    soft_cap_ratio: Decimal | None = Field(default=None, gt=0, le=1, decimal_places=3)


# Amounts are stored as NUMERIC; the JSON answers carry plain numbers.
class SettingsOut(BaseModel):
    app_id: UUID
    plan: str
    monthly_allocations: bool
    free_daily_quota: int
    low_balance_threshold: int
    monthly_budget_usd: float | None
    soft_cap_ratio: float
    period: str
    spent_usd: float
    budget_levels_reached: list[str]


class PricingRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_tokens: int = Field(gt=0, le=MAX_TOKENS_PER_OUTPUT, strict=True)
    hd_multiplier: Decimal = Field(default=Decimal("1.5"), ge=1, le=100, decimal_places=3)


class PricingRuleOut(BaseModel):
    model: str
    app_id: UUID | None
    base_tokens: int
    hd_multiplier: float

    @classmethod
    def of(cls, rule: Price) -> "PricingRuleOut":
        return cls(
            model=rule.model, app_id=rule.app_id, base_tokens=rule.tokens_per_output,
            hd_multiplier=float(rule.hd_multiplier),
        )  # fmt: skip


class PricingOut(BaseModel):
    rules: list[PricingRuleOut]


class PlanOut(BaseModel):
    plan: str
    monthly_tokens: int


class PlansOut(BaseModel):
    plans: list[PlanOut]


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monthly_tokens: int = Field(ge=0, le=MAX_AMOUNT, strict=True)


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
    tokens_per_output: int  # base: one 1024x1024 standard-quality output
    base_tokens: int
    hd_multiplier: float
    hd_tokens_per_output: int
    overridden: bool  # an app-specific rule


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
    balance = await services.get_balance(uow, app_id=app_id, user_id=user_id)
    return BalanceOut(
        app_id=app_id,
        user_id=user_id,
        free_quota_left=balance.free_quota_left,
        free_quota_per_day=balance.free_quota_per_day,
        disabled=balance.disabled,
        **FundsOut.of(balance.funds).model_dump(),
    )


@router.put("/apps/{app_id}/users/{user_id}")
async def put_user(app_id: UUID, user_id: UserId, body: UserIn, uow: UowDep) -> BalanceOut:
    """Disable or re-enable an end user (`{"disabled": bool}`); answers with the balance."""
    await services.set_user_disabled(uow, app_id=app_id, user_id=user_id, disabled=body.disabled)
    await uow.commit()
    return await get_balance(app_id, user_id, uow)


def _future(expires_at: datetime | None, where: str) -> None:
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise ApiError(422, "invalid_expiry", f"{where}: expires_at must be in the future.")


def _grant_response(result: services.GrantResult) -> JSONResponse:
    out = GrantOut(transfer_id=result.transfer_id, **FundsOut.of(result.funds).model_dump())
    # A replay answers exactly like the original; the header tells the two apart.
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Idempotent-Replayed": "true" if result.replayed else "false"},
    )


@router.post("/apps/{app_id}/users/{user_id}/grants", status_code=201, response_model=GrantOut)
async def post_grant(app_id: UUID, user_id: UserId, body: GrantIn, uow: UowDep) -> JSONResponse:
    _future(body.expires_at, "grant")
    result = await services.grant_tokens(
        uow,
        app_id=app_id,
        user_id=user_id,
        amount=body.amount,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
        kind=TransferKind(body.kind),
        expires_at=body.expires_at,
    )
    await uow.commit()
    return _grant_response(result)


@router.post("/apps/{app_id}/grants/batch", status_code=201)
async def post_grant_batch(app_id: UUID, body: BatchGrantIn, uow: UowDep) -> BatchGrantOut:
    for index, line in enumerate(body.grants):
        _future(line.expires_at, f"grants[{index}]")
    lines = [
        services.GrantLine(g.user_id, g.amount, g.reason, g.expires_at, TransferKind(g.kind))
        for g in body.grants
    ]
    results = await services.grant_batch(
        uow, app_id=app_id, lines=lines, idempotency_key=body.idempotency_key
    )
    await uow.commit()
    return BatchGrantOut(
        results=[
            BatchGrantResult(
                user_id=line.user_id, transfer_id=r.transfer_id, **FundsOut.of(r.funds).model_dump()
            )
            for line, r in zip(lines, results, strict=True)
        ]
    )


@router.post("/apps/{app_id}/users/{user_id}/adjustments", status_code=201, response_model=GrantOut)
async def post_adjustment(
    app_id: UUID, user_id: UserId, body: AdjustmentIn, uow: UowDep
) -> JSONResponse:
    result = await services.adjust_tokens(
        uow,
        app_id=app_id,
        user_id=user_id,
        amount=body.amount,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
    )
    await uow.commit()
    return _grant_response(result)


def _settings_out(view: admin.SettingsView) -> SettingsOut:
    s = view.settings
    return SettingsOut(
        app_id=s.app_id,
        plan=s.plan,
        monthly_allocations=s.monthly_allocations,
        free_daily_quota=s.free_daily_quota,
        low_balance_threshold=s.low_balance_threshold,
        monthly_budget_usd=None if s.monthly_budget_usd is None else float(s.monthly_budget_usd),
        soft_cap_ratio=float(s.soft_cap_ratio),
        period=view.period,
        spent_usd=float(view.spent_usd),
        budget_levels_reached=view.budget_levels,
    )


@router.get("/apps/{app_id}/settings")
async def get_settings(app_id: UUID, uow: UowDep) -> SettingsOut:
    return _settings_out(await admin.get_settings(uow, app_id))


@router.put("/apps/{app_id}/settings")
async def put_settings(app_id: UUID, body: SettingsIn, uow: UowDep) -> SettingsOut:
    # Only the fields sent change; `monthly_budget_usd: null` removes the budget.
    changes = body.model_dump(exclude_unset=True, mode="python")
    if isinstance(changes.get("plan"), Plan):
        changes["plan"] = changes["plan"].value
    view = await admin.update_settings(uow, app_id, changes)
    await uow.commit()
    return _settings_out(view)


@router.get("/pricing")
async def get_pricing(uow: UowDep, app_id: UUID | None = None) -> PricingOut:
    """Default rules; with `app_id`, that app's overrides instead."""
    rules = await admin.pricing_rules(uow, app_id)
    return PricingOut(rules=[PricingRuleOut.of(r) for r in rules])


Model = Annotated[str, Path(min_length=1, max_length=64)]


async def _set_rule(
    uow: UowDep, app_id: UUID | None, model: str, body: PricingRuleIn
) -> PricingRuleOut:
    await admin.set_pricing_rule(
        uow, app_id=app_id, model=model, base_tokens=body.base_tokens,
        hd_multiplier=body.hd_multiplier,
    )  # fmt: skip
    await uow.commit()
    return PricingRuleOut(
        model=model, app_id=app_id, base_tokens=body.base_tokens,
        hd_multiplier=float(body.hd_multiplier),
    )  # fmt: skip


@router.put("/pricing/{model}")
async def put_pricing(model: Model, body: PricingRuleIn, uow: UowDep) -> PricingRuleOut:
    """Set the default rule for a model (every app without an override)."""
    return await _set_rule(uow, None, model, body)


@router.put("/apps/{app_id}/pricing/{model}")
async def put_app_pricing(
    app_id: UUID, model: Model, body: PricingRuleIn, uow: UowDep
) -> PricingRuleOut:
    """Override a model's rule for one app."""
    return await _set_rule(uow, app_id, model, body)


@router.delete("/apps/{app_id}/pricing/{model}", status_code=204)
async def delete_app_pricing(app_id: UUID, model: Model, uow: UowDep) -> Response:
    await admin.delete_override(uow, app_id=app_id, model=model)
    await uow.commit()
    return Response(status_code=204)


@router.get("/plans")
async def get_plans(uow: UowDep) -> PlansOut:
    rows = await admin.plans(uow)
    return PlansOut(plans=[PlanOut(plan=p.plan, monthly_tokens=p.monthly_tokens) for p in rows])


@router.put("/plans/{plan}")
async def put_plan(plan: Plan, body: PlanIn, uow: UowDep) -> PlanOut:
    await admin.set_plan(uow, plan, body.monthly_tokens)
    await uow.commit()
    return PlanOut(plan=plan.value, monthly_tokens=body.monthly_tokens)


class AllocationRunOut(BaseModel):
    period: str
    users: int
    tokens: int
    more: bool  # a full batch: call again for the rest


@router.post("/plans/allocate")
async def post_allocate_plans(
    uow: UowDep, limit: Annotated[int, Query(ge=1, le=5000)] = 500
) -> AllocationRunOut:
    """Run the plan scheduler's work now (operators, tests): credit this month's plan tokens to
    up to `limit` users not yet allocated. Idempotent like the scheduler itself."""
    done = await sweeps.allocate_plans(uow, limit=limit)
    await uow.commit()
    return AllocationRunOut(
        period=done.period, users=done.users, tokens=done.tokens, more=done.users == limit
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
    """What a job costs per output (1024x1024; larger sizes scale by area), as `GET /v1/models`
    shows it. The price is fixed on the hold when the job is reserved."""
    book = await services.price_book(uow, app_id=app_id)
    return PricesOut(
        prices=[
            PriceOut(
                model=rule.model,
                tokens_per_output=rule.tokens_per_output,
                base_tokens=rule.tokens_per_output,
                hd_multiplier=float(rule.hd_multiplier),
                hd_tokens_per_output=price_per_output(
                    rule.tokens_per_output, ImageSize(), "hd", rule.hd_multiplier
                ),
                overridden=rule.model in book.overridden,
            )
            for rule in book.listing()
        ]
    )


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
