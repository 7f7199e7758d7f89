"""Queries over the gateway's tables. Every job query is scoped by app id (tenant isolation)."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from genhub_contracts import AppOptions
from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy import tuple_ as sa_tuple
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_gateway.adapters.tables import (
    AdminTokenRow,
    ApiKeyRow,
    AppRow,
    AuditRow,
    EndUserRow,
    IdempotencyKeyRow,
    JobRow,
)


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
    key_prefix: str = ""
    welcome_grant: int = 0
    rate_limit_per_minute: int = 6000
    user_rate_limit_per_minute: int = 600
    options: AppOptions = field(default_factory=AppOptions)

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"app:{self.app_slug}/key:{self.key_prefix}"


@dataclass(frozen=True)
class AdminTokenOwner:
    token_hash: str
    id: UUID
    name: str
    prefix: str
    revoked: bool

    @property
    def actor(self) -> str:
        return f"admin:{self.name}/{self.prefix}"


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
            key_prefix=key.prefix,
            welcome_grant=app.welcome_grant,
            rate_limit_per_minute=app.rate_limit_per_minute,
            user_rate_limit_per_minute=app.user_rate_limit_per_minute,
            options=AppOptions.model_validate(app.options or {}),
        )


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, app_id: UUID, job_id: UUID) -> JobRow | None:
        rows = await self.session.exec(
            select(JobRow).where(JobRow.app_id == app_id, JobRow.job_id == job_id)
        )
        return rows.first()

    async def page(
        self,
        app_id: UUID,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        status: str | None = None,
        user_id: str | None = None,
        model: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[JobRow]:
        """Up to `limit` of the app's jobs, newest first (ties by job id ascending, the order of
        ix_jobs_app_created_desc_job), strictly after the key `after` in that order."""
        query = select(JobRow).where(JobRow.app_id == app_id)
        if status is not None:
            query = query.where(JobRow.status == status)
        if user_id is not None:
            query = query.where(JobRow.user_id == user_id)
        if model is not None:
            query = query.where(JobRow.model == model)
        if created_after is not None:
            query = query.where(col(JobRow.created_at) >= created_after)
        if created_before is not None:
            query = query.where(col(JobRow.created_at) < created_before)
        if after is not None:
            last_created, last_id = after
            query = query.where(
                col(JobRow.created_at) <= last_created,
                or_(
                    col(JobRow.created_at) < last_created,
                    and_(col(JobRow.created_at) == last_created, col(JobRow.job_id) > last_id),
                ),
            )
        query = query.order_by(col(JobRow.created_at).desc(), col(JobRow.job_id)).limit(limit)
        return list((await self.session.exec(query)).all())

    async def user_totals(self, app_id: UUID, user_id: str) -> dict[str, tuple[int, int]]:
        """status → (jobs, tokens charged) for one end user of one app."""
        rows = await self.session.exec(
            select(
                JobRow.status,
                func.count(),
                func.coalesce(func.sum(JobRow.tokens_charged), 0),
            )
            .where(JobRow.app_id == app_id, JobRow.user_id == user_id)
            .group_by(col(JobRow.status))
        )
        return {status: (int(n), int(tokens)) for status, n, tokens in rows.all()}


class IdempotencyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_if_absent(self, row: IdempotencyKeyRow) -> bool:
        """Insert the key as held by `row.owner`; False when the app already has this key."""
        values = row.model_dump(exclude={"response_status", "response_body", "job_id"})
        result = await self.session.exec(
            insert(IdempotencyKeyRow)  # type: ignore[call-overload]
            .values(**values)
            .on_conflict_do_nothing(index_elements=["app_id", "key"])
            .returning(IdempotencyKeyRow.key)  # type: ignore[arg-type]
        )
        return result.first() is not None

    async def get(self, app_id: UUID, key: str) -> IdempotencyKeyRow | None:
        return await self.session.get(IdempotencyKeyRow, (app_id, key))

    async def lock(self, app_id: UUID, key: str) -> IdempotencyKeyRow | None:
        rows = await self.session.exec(
            select(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.app_id == app_id, IdempotencyKeyRow.key == key)
            .with_for_update()
        )
        return rows.first()

    async def complete(
        self,
        app_id: UUID,
        key: str,
        owner: UUID,
        *,
        status: int,
        body: dict[str, Any],
        job_id: UUID | None,
    ) -> bool:
        """Record the answer; False when this request no longer holds the key."""
        result = await self.session.exec(
            update(IdempotencyKeyRow)  # type: ignore[call-overload]
            .where(
                col(IdempotencyKeyRow.app_id) == app_id,
                col(IdempotencyKeyRow.key) == key,
                col(IdempotencyKeyRow.owner) == owner,
                col(IdempotencyKeyRow.state) == "in_progress",
            )
            .values(state="completed", response_status=status, response_body=body, job_id=job_id)
        )
        return bool(result.rowcount)

    async def release(self, app_id: UUID, key: str, owner: UUID) -> None:
        await self.session.exec(
            delete(IdempotencyKeyRow).where(  # type: ignore[call-overload]
                col(IdempotencyKeyRow.app_id) == app_id,
                col(IdempotencyKeyRow.key) == key,
                col(IdempotencyKeyRow.owner) == owner,
                col(IdempotencyKeyRow.state) == "in_progress",
            )
        )

    async def prune(self, older_than: datetime, limit: int = 1000) -> int:
        """Delete up to `limit` keys created before `older_than`; returns how many."""
        doomed = (
            select(IdempotencyKeyRow.app_id, IdempotencyKeyRow.key)
            .where(col(IdempotencyKeyRow.created_at) < older_than)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.session.exec(
            delete(IdempotencyKeyRow).where(  # type: ignore[call-overload]
                sa_tuple(col(IdempotencyKeyRow.app_id), col(IdempotencyKeyRow.key)).in_(doomed)
            )
        )
        return int(result.rowcount or 0)


class AdminTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def owner(self, token_hash: str) -> AdminTokenOwner | None:
        rows = await self.session.exec(
            select(AdminTokenRow).where(AdminTokenRow.token_hash == token_hash)
        )
        row = rows.first()
        if row is None:
            return None
        return AdminTokenOwner(
            token_hash=row.token_hash,
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            revoked=row.revoked_at is not None,
        )

    async def all(self) -> list[AdminTokenRow]:
        rows = await self.session.exec(
            select(AdminTokenRow).order_by(col(AdminTokenRow.created_at))
        )
        return list(rows.all())

    async def get(self, token_id: UUID) -> AdminTokenRow | None:
        return await self.session.get(AdminTokenRow, token_id)


class EndUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first_sight(self, app_id: UUID, user_id: str, welcome_tokens: int) -> EndUserRow:
        """The end user's row, created now (with the app's current welcome grant) if new."""
        await self.session.exec(
            insert(EndUserRow)  # type: ignore[call-overload]
            .values(app_id=app_id, user_id=user_id, welcome_tokens=welcome_tokens)
            .on_conflict_do_nothing(index_elements=["app_id", "user_id"])
        )
        rows = await self.session.exec(
            select(EndUserRow).where(EndUserRow.app_id == app_id, EndUserRow.user_id == user_id)
        )
        return rows.one()

    async def exists(self, app_id: UUID, user_id: str) -> bool:
        rows = await self.session.exec(
            select(EndUserRow.user_id).where(
                EndUserRow.app_id == app_id, EndUserRow.user_id == user_id
            )
        )
        return rows.first() is not None

    async def mark_welcomed(self, app_id: UUID, user_id: str, transfer_id: str | None) -> bool:
        """True for the one request that records the welcome grant as applied."""
        result = await self.session.exec(
            update(EndUserRow)  # type: ignore[call-overload]
            .where(
                col(EndUserRow.app_id) == app_id,
                col(EndUserRow.user_id) == user_id,
                col(EndUserRow.welcome_granted_at).is_(None),
            )
            .values(welcome_granted_at=func.now(), welcome_transfer_id=transfer_id)
        )
        return bool(result.rowcount)


@dataclass(frozen=True)
class AuditFilters:
    actor: str | None = None
    action: str | None = None
    app_id: UUID | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: AuditRow) -> None:
        self.session.add(row)

    async def page(
        self, filters: AuditFilters, *, limit: int, before_id: int | None
    ) -> list[AuditRow]:
        """Newest first; `before_id` continues after the previous page's last row."""
        query = select(AuditRow)
        if filters.actor is not None:
            query = query.where(AuditRow.actor == filters.actor)
        if filters.action is not None:
            query = query.where(AuditRow.action == filters.action)
        if filters.app_id is not None:
            query = query.where(AuditRow.app_id == filters.app_id)
        if filters.target_id is not None:
            query = query.where(AuditRow.target_id == filters.target_id)
        if filters.since is not None:
            query = query.where(col(AuditRow.at) >= filters.since)
        if filters.until is not None:
            query = query.where(col(AuditRow.at) < filters.until)
        if before_id is not None:
            query = query.where(col(AuditRow.id) < before_id)
        query = query.order_by(col(AuditRow.id).desc()).limit(limit)
        return list((await self.session.exec(query)).all())
