"""SQL for billing's configuration: app settings, pricing rules and plans."""

from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_billing.adapters.tables import AppSettings, PlanRow, Price


class ConfigRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def settings(self, app_id: UUID) -> AppSettings | None:
        return await self.session.get(AppSettings, app_id)

    async def upsert_settings(self, app_id: UUID, changes: dict[str, Any]) -> AppSettings:
        values = {"app_id": app_id, **changes}
        statement = insert(AppSettings).values(values)
        await self.session.exec(
            statement.on_conflict_do_update(
                index_elements=[col(AppSettings.app_id)],
                set_={**{k: statement.excluded[k] for k in changes}, "updated_at": func.now()},
            )
        )
        row = await self.session.get(AppSettings, app_id, populate_existing=True)
        assert row is not None
        return row

    async def rules(self, app_id: UUID | None) -> list[Price]:
        query = select(Price).where(
            col(Price.app_id).is_(None) if app_id is None else col(Price.app_id) == app_id
        )
        return list((await self.session.exec(query.order_by(col(Price.model)))).all())

    async def upsert_rule(
        self, app_id: UUID | None, model: str, base_tokens: int, hd_multiplier: Decimal
    ) -> None:
        values = {
            "app_id": app_id, "model": model, "tokens_per_output": base_tokens,
            "hd_multiplier": hd_multiplier,
        }  # fmt: skip
        where = "app_id IS NULL" if app_id is None else "app_id IS NOT NULL"
        index = ["model"] if app_id is None else ["app_id", "model"]

        await self.session.exec(
            insert(Price)
            .values(values)
            .on_conflict_do_update(
                index_elements=index,
                index_where=text(where),
                set_={
                    "tokens_per_output": base_tokens,
                    "hd_multiplier": hd_multiplier,
                    "updated_at": func.now(),
                },
            )
        )

    async def delete_override(self, app_id: UUID, model: str) -> bool:
        result = await self.session.exec(
            delete(Price).where(col(Price.app_id) == app_id, col(Price.model) == model)
        )
        return bool(result.rowcount)

    async def plans(self) -> list[PlanRow]:
        return list(
            (await self.session.exec(select(PlanRow).order_by(col(PlanRow.monthly_tokens)))).all()
        )

    async def set_plan(self, plan: str, monthly_tokens: int) -> None:
        await self.session.exec(
            insert(PlanRow)
            .values(plan=plan, monthly_tokens=monthly_tokens)
            .on_conflict_do_update(
                index_elements=[col(PlanRow.plan)],
                set_={"monthly_tokens": monthly_tokens, "updated_at": func.now()},
            )
        )
