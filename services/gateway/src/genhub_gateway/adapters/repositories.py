"""Queries over the gateway's tables. Every job query is scoped by app id (tenant isolation)."""

from dataclasses import dataclass
from uuid import UUID

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_gateway.adapters.tables import ApiKeyRow, AppRow, JobRow


@dataclass(frozen=True)
class KeyOwner:
    """What authentication needs to know about the app behind a key."""

    key_id: UUID
    key_hash: str
    revoked: bool
    app_id: UUID
    app_slug: str
    plan: str
    enabled: bool
    webhook_url: str | None


class AppRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, app_id: UUID) -> AppRow | None:
        return await self.session.get(AppRow, app_id)

    async def slug_taken(self, slug: str) -> bool:
        found = await self.session.exec(select(AppRow.id).where(AppRow.slug == slug))
        return found.first() is not None

    async def all(self) -> list[AppRow]:
        return list(
            (await self.session.exec(select(AppRow).order_by(col(AppRow.created_at)))).all()
        )

    async def keys(self, app_id: UUID) -> list[ApiKeyRow]:
        rows = await self.session.exec(
            select(ApiKeyRow).where(ApiKeyRow.app_id == app_id).order_by(col(ApiKeyRow.created_at))
        )
        return list(rows.all())

    async def get_key(self, app_id: UUID, key_id: UUID) -> ApiKeyRow | None:
        rows = await self.session.exec(
            select(ApiKeyRow).where(ApiKeyRow.app_id == app_id, ApiKeyRow.id == key_id)
        )
        return rows.first()

    async def key_owner(self, key_hash: str) -> KeyOwner | None:
        rows = await self.session.exec(
            select(ApiKeyRow, AppRow)
            .join(AppRow, col(AppRow.id) == col(ApiKeyRow.app_id))
            .where(ApiKeyRow.key_hash == key_hash)
        )
        found = rows.first()
        if found is None:
            return None
        key, app = found
        return KeyOwner(
            key_id=key.id,
            key_hash=key.key_hash,
            revoked=key.revoked_at is not None,
            app_id=app.id,
            app_slug=app.slug,
            plan=app.plan,
            enabled=app.enabled,
            webhook_url=app.webhook_url,
        )


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, app_id: UUID, job_id: UUID) -> JobRow | None:
        rows = await self.session.exec(
            select(JobRow).where(JobRow.app_id == app_id, JobRow.job_id == job_id)
        )
        return rows.first()

    async def by_idempotency_key(self, app_id: UUID, key: str) -> JobRow | None:
        rows = await self.session.exec(
            select(JobRow).where(JobRow.app_id == app_id, JobRow.idempotency_key == key)
        )
        return rows.first()

    async def lock(self, app_id: UUID, job_id: UUID) -> JobRow | None:
        # Handlers for different topics run concurrently; the row lock serialises their
        # read-modify-write so no projection update is lost.
        rows = await self.session.exec(
            select(JobRow).where(JobRow.app_id == app_id, JobRow.job_id == job_id).with_for_update()
        )
        return rows.first()
