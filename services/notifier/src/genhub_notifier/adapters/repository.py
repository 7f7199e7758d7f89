"""Queries on the notifier tables. Every tenant-scoped read filters by app_id."""

from collections import defaultdict
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_notifier.adapters.tables import (
    Delivery,
    DeliveryAttempt,
    JobSubscription,
    SigningSecret,
)
from genhub_notifier.domain.delivery import DUE_STATUSES, DeliveryStatus, Transition

# --- signing secrets ----------------------------------------------------------------------------


async def insert_secret(session: AsyncSession, app_id: UUID, encrypted: str) -> bool:
    """False when the app already has a secret (the existing one is left untouched)."""
    result = await session.exec(
        insert(SigningSecret)
        .values(app_id=app_id, secret_encrypted=encrypted)
        .on_conflict_do_nothing()
        .returning(col(SigningSecret.app_id))
    )
    return result.first() is not None


async def replace_secret(
    session: AsyncSession, app_id: UUID, encrypted: str, now: datetime
) -> None:
    stmt = insert(SigningSecret).values(app_id=app_id, secret_encrypted=encrypted)
    await session.exec(
        stmt.on_conflict_do_update(
            index_elements=[col(SigningSecret.app_id)],
            set_={"secret_encrypted": encrypted, "rotated_at": now},
        )
    )


async def get_secret(session: AsyncSession, app_id: UUID) -> SigningSecret | None:
    return await session.get(SigningSecret, app_id)


# --- subscriptions ------------------------------------------------------------------------------


async def insert_subscription(session: AsyncSession, **values: Any) -> bool:
    result = await session.exec(
        insert(JobSubscription)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(col(JobSubscription.job_id))
    )
    return result.first() is not None


async def get_subscription(
    session: AsyncSession, app_id: UUID, job_id: UUID
) -> JobSubscription | None:
    result = await session.exec(
        select(JobSubscription).where(
            JobSubscription.job_id == job_id, JobSubscription.app_id == app_id
        )
    )
    return result.first()


# --- deliveries ---------------------------------------------------------------------------------


async def insert_delivery(session: AsyncSession, **values: Any) -> bool:
    """False when this (job, event type) already has its delivery (a replayed event)."""
    result = await session.exec(
        insert(Delivery).values(**values).on_conflict_do_nothing().returning(col(Delivery.id))
    )
    return result.first() is not None


async def wake_waiting(session: AsyncSession, app_id: UUID, job_id: UUID, now: datetime) -> None:
    """The subscription just arrived: let waiting deliveries of this job go on the next pass.

    Only unclaimed rows: a claimed one is rechecked by its claimer when it finishes."""
    await session.exec(
        update(Delivery)
        .where(
            col(Delivery.app_id) == app_id,
            col(Delivery.job_id) == job_id,
            col(Delivery.status) == DeliveryStatus.WAITING_SUBSCRIPTION,
            col(Delivery.claim_token).is_(None),
        )
        .values(next_attempt_at=now, updated_at=now)
    )


async def claim_due(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime, token: UUID
) -> list[Delivery]:
    """Lease up to `limit` due deliveries; other replicas skip them (SKIP LOCKED) and, once
    leased, see them as not due until `lease_until` (a crashed claimer's rows come back then)."""
    rows = (
        await session.exec(
            select(Delivery)
            .where(
                col(Delivery.status).in_([s.value for s in DUE_STATUSES]),
                col(Delivery.next_attempt_at) <= now,
            )
            .order_by(col(Delivery.next_attempt_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if rows:
        await session.exec(
            update(Delivery)
            .where(col(Delivery.id).in_([r.id for r in rows]))
            .values(next_attempt_at=lease_until, claim_token=token)
        )
        for row in rows:
            row.claim_token = token
    return list(rows)


async def finish_claim(
    session: AsyncSession,
    delivery_id: str,
    token: UUID,
    transition: Transition,
    now: datetime,
    *,
    attempt_count: int | None = None,
    last_error: str | None = None,
    target_url: str | None = None,
) -> bool:
    """Apply a transition if we still hold the lease; False when another replica took over."""
    values: dict[str, Any] = {
        "status": transition.status.value,
        "next_attempt_at": transition.next_attempt_at,
        "claim_token": None,
        "updated_at": now,
        "last_error": last_error,
    }
    if attempt_count is not None:
        values["attempt_count"] = attempt_count
    if target_url is not None:
        values["target_url"] = target_url
    if transition.status is DeliveryStatus.DELIVERED:
        values["delivered_at"] = now
    result = await session.exec(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.claim_token) == token)
        .values(**values)
    )
    return bool(result.rowcount)


async def release_claims(session: AsyncSession, token: UUID, ids: list[str], now: datetime) -> None:
    """Hand unfinished claims back at shutdown so another replica need not wait for the lease."""
    await session.exec(
        update(Delivery)
        .where(col(Delivery.id).in_(ids), col(Delivery.claim_token) == token)
        .values(claim_token=None, next_attempt_at=now)
    )


def add_attempt(session: AsyncSession, attempt: DeliveryAttempt) -> None:
    session.add(attempt)


async def list_deliveries(
    session: AsyncSession, app_id: UUID, job_id: UUID | None, limit: int
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    query = select(Delivery).where(Delivery.app_id == app_id)
    if job_id is not None:
        query = query.where(Delivery.job_id == job_id)
    deliveries = (
        await session.exec(
            query.order_by(col(Delivery.created_at).desc(), col(Delivery.id)).limit(limit)
        )
    ).all()
    attempts: dict[str, list[DeliveryAttempt]] = defaultdict(list)
    if deliveries:
        for attempt in (
            await session.exec(
                select(DeliveryAttempt)
                .where(col(DeliveryAttempt.delivery_id).in_([d.id for d in deliveries]))
                .order_by(col(DeliveryAttempt.delivery_id), col(DeliveryAttempt.attempt_no))
            )
        ).all():
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]
