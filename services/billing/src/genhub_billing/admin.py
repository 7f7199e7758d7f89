"""Configuration use cases (internal API, used by the gateway's admin API): app settings,
pricing rules with per-app overrides, plans. They never commit; the HTTP handler does."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from genhub_contracts import Plan
from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork

from genhub_billing import services
from genhub_billing.adapters.config_repo import ConfigRepo
from genhub_billing.adapters.ledger_repo import LedgerRepo
from genhub_billing.adapters.tables import AppSettings, PlanRow, Price
from genhub_billing.domain.budget import Budget


@dataclass(frozen=True, slots=True)
class SettingsView:
    settings: AppSettings
    period: str
    spent_usd: Decimal
    budget_levels: list[str]


async def get_settings(uow: UnitOfWork, app_id: UUID) -> SettingsView:
    settings = await ConfigRepo(uow.session).settings(app_id) or AppSettings(app_id=app_id)
    return await _view(uow, settings)


async def update_settings(uow: UnitOfWork, app_id: UUID, changes: dict[str, Any]) -> SettingsView:
    if "plan" in changes and changes["plan"] is None:
        raise ApiError(422, "invalid_settings", "plan cannot be null")
    settings = await ConfigRepo(uow.session).upsert_settings(app_id, changes)
    view = await _view(uow, settings)
    # A lowered budget may already be exceeded: announce it now, not at the next job's cost.
    await services.announce_budget_levels(
        uow, LedgerRepo(uow.session), app_id, view.spent_usd, view.period
    )
    return view


async def _view(uow: UnitOfWork, settings: AppSettings) -> SettingsView:
    spent, period = await LedgerRepo(uow.session).spend(settings.app_id)
    levels = Budget(settings.monthly_budget_usd, settings.soft_cap_ratio).levels_reached(spent)
    return SettingsView(settings, period, spent, list(levels))


async def pricing_rules(uow: UnitOfWork, app_id: UUID | None) -> list[Price]:
    return await ConfigRepo(uow.session).rules(app_id)


async def set_pricing_rule(
    uow: UnitOfWork, *, app_id: UUID | None, model: str, base_tokens: int, hd_multiplier: Decimal
) -> None:
    await ConfigRepo(uow.session).upsert_rule(app_id, model, base_tokens, hd_multiplier)


async def delete_override(uow: UnitOfWork, *, app_id: UUID, model: str) -> None:
    if not await ConfigRepo(uow.session).delete_override(app_id, model):
        raise ApiError(404, "not_found", f"No price override for {model!r} in this app.")


async def plans(uow: UnitOfWork) -> list[PlanRow]:
    return await ConfigRepo(uow.session).plans()


async def set_plan(uow: UnitOfWork, plan: Plan, monthly_tokens: int) -> None:
    await ConfigRepo(uow.session).set_plan(plan.value, monthly_tokens)
