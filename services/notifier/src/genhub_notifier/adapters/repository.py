"""Queries on the notifier tables. Every tenant-scoped query filters by app_id."""

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from genhub_platform import db
from sqlalchemy import func, or_, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_notifier.adapters.tables import (
    Delivery,
    DeliveryAttempt,
    Endpoint,
    Message,
    SigningSecret,
)
from genhub_notifier.domain.delivery import DeliveryStatus, MessageStatus, Transition

# Dispatchers LISTEN on this channel; NOTIFY is delivered when the transaction commits.
DUE_CHANNEL = "genhub_notifier_due"


_NOTIFY_DUE = db.Statement(f"SELECT pg_notify('{DUE_CHANNEL}', '')")


async def notify_due(session: AsyncSession) -> None:
    """Wake every dispatcher once this transaction commits (new or replayed work is due)."""
    await _NOTIFY_DUE.execute(session)


def _unnest_insert(
    table: str, columns: Sequence[tuple[str, str]], returning: str = ""
) -> db.Statement:
    """`INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`: one fixed statement for
    any number of rows (a multi-VALUES insert is compiled afresh for every row count, which
    cost more CPU than the database work)."""
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in columns)
    # Built once at import from this module's constants, never from input.
    sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"  # noqa: S608
    return db.Statement(sql + (f" RETURNING {returning}" if returning else ""))


def _columns(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {name: [row.get(name) for row in rows] for name, _ in columns}


# --- app signing secrets (for jobs' own webhook_url) --------------------------------------------


async def insert_secret(session: AsyncSession, app_id: UUID, encrypted: str) -> bool:
    """False when the app already has a secret (the existing one is left untouched)."""
    result = await session.exec(
        insert(SigningSecret)
        .values(app_id=app_id, secret_encrypted=encrypted)
        .on_conflict_do_nothing()
        .returning(col(SigningSecret.app_id))
    )
    return result.first() is not None


async def rotate_secret(
    session: AsyncSession,
    app_id: UUID,
    encrypted: str,
    previous_expires_at: datetime,
    now: datetime,
) -> None:
    """The current secret becomes the previous one (valid until `previous_expires_at`)."""
    stmt = insert(SigningSecret).values(app_id=app_id, secret_encrypted=encrypted)
    await session.exec(
        stmt.on_conflict_do_update(
            index_elements=[col(SigningSecret.app_id)],
            set_={
                "previous_secret_encrypted": SigningSecret.__table__.c.secret_encrypted,
                "previous_expires_at": previous_expires_at,
                "secret_encrypted": encrypted,
                "rotated_at": now,
            },
        )
    )


async def get_secret(session: AsyncSession, app_id: UUID) -> SigningSecret | None:
    return await session.get(SigningSecret, app_id)


# --- endpoints ----------------------------------------------------------------------------------


def add_endpoint(session: AsyncSession, endpoint: Endpoint) -> None:
    session.add(endpoint)


async def list_endpoints(session: AsyncSession, app_id: UUID) -> Sequence[Endpoint]:
    return (
        await session.exec(
            select(Endpoint)
            .where(Endpoint.app_id == app_id)
            .order_by(col(Endpoint.created_at), col(Endpoint.id))
        )
    ).all()


async def get_endpoint(
    session: AsyncSession, app_id: UUID, endpoint_id: UUID, *, for_update: bool = False
) -> Endpoint | None:
    query = select(Endpoint).where(Endpoint.app_id == app_id, Endpoint.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def delete_endpoint(session: AsyncSession, app_id: UUID, endpoint_id: UUID) -> bool:
    result = await session.exec(
        delete(Endpoint).where(col(Endpoint.app_id) == app_id, col(Endpoint.id) == endpoint_id)  # type: ignore[call-overload]
    )
    return bool(result.rowcount)


async def record_endpoint_result(
    session: AsyncSession, app_id: UUID, endpoint_id: UUID, *, ok: bool, now: datetime
) -> datetime | None:
    """Success ends the endpoint's failing streak; a failure starts it if none is running.
    Returns the streak's start (None when healthy)."""
    result = await session.exec(
        update(Endpoint)
        .where(col(Endpoint.app_id) == app_id, col(Endpoint.id) == endpoint_id)
        .values(failing_since=None if ok else func.coalesce(col(Endpoint.failing_since), now))
        .returning(col(Endpoint.failing_since))  # type: ignore[arg-type]
    )
    row = result.first()
    return row[0] if row is not None else None


async def disable_endpoint(
    session: AsyncSession, app_id: UUID, endpoint_id: UUID, reason: str, now: datetime
) -> Endpoint | None:
    """Disable if still enabled; the endpoint when this call disabled it, else None."""
    result = await session.exec(
        update(Endpoint)
        .where(
            col(Endpoint.app_id) == app_id,
            col(Endpoint.id) == endpoint_id,
            col(Endpoint.enabled).is_(True),
        )
        .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
        .returning(col(Endpoint.id))
    )
    if result.first() is None:
        return None
    query = (
        select(Endpoint).where(Endpoint.id == endpoint_id).execution_options(populate_existing=True)
    )
    return (await session.exec(query)).first()


# --- subscriptions and settlements --------------------------------------------------------------


_SUBSCRIPTION_COLUMNS = (
    ("job_id", "uuid"),
    ("app_id", "uuid"),
    ("user_id", "text"),
    ("model", "text"),
    ("webhook_url", "text"),
    ("metadata", "jsonb"),
    ("requested_at", "timestamptz"),
)
_INSERT_SUBSCRIPTIONS = _unnest_insert("job_subscriptions", _SUBSCRIPTION_COLUMNS)
_SETTLEMENT_COLUMNS = (
    ("job_id", "uuid"),
    ("app_id", "uuid"),
    ("outcome", "text"),
    ("charged", "int"),
    ("refunded", "int"),
)
_INSERT_SETTLEMENTS = _unnest_insert("job_settlements", _SETTLEMENT_COLUMNS)


async def insert_subscriptions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """One statement for a batch; a job already known is left as it is. Rows use the
    columns' names (`metadata`, as JSON-ready values)."""
    if rows:
        params = _columns(rows, _SUBSCRIPTION_COLUMNS)
        params["metadata"] = [json.dumps(m or {}) for m in params["metadata"]]
        await _INSERT_SUBSCRIPTIONS.execute(session, **params)


async def insert_settlements(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await _INSERT_SETTLEMENTS.execute(session, **_columns(rows, _SETTLEMENT_COLUMNS))


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    """What a job's messages need from its job.requested."""

    app_id: UUID
    job_id: UUID
    user_id: str
    model: str
    webhook_url: str | None
    job_metadata: dict[str, Any]
    requested_at: datetime | None


@dataclass(frozen=True, slots=True)
class SettlementRow:
    app_id: UUID
    job_id: UUID
    outcome: str
    charged: int
    refunded: int


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """An enabled endpoint as fan-out needs it: where, for which events, how it signs."""

    id: UUID
    app_id: UUID
    url: str
    event_types: list[str] | None
    enabled: bool
    secret_encrypted: str
    previous_secret_encrypted: str | None
    previous_expires_at: datetime | None
    failing_since: datetime | None


_SUBSCRIPTIONS_FOR = db.Statement(
    "SELECT app_id, job_id, user_id, model, webhook_url, metadata, requested_at"
    " FROM job_subscriptions WHERE job_id = ANY(CAST(:ids AS uuid[]))"
)
_SETTLEMENTS_FOR = db.Statement(
    "SELECT app_id, job_id, outcome, charged, refunded"
    " FROM job_settlements WHERE job_id = ANY(CAST(:ids AS uuid[]))"
)
_ENABLED_ENDPOINTS = db.Statement(
    "SELECT id, app_id, url, event_types, enabled, secret_encrypted, previous_secret_encrypted,"
    " previous_expires_at, failing_since FROM endpoints"
    " WHERE app_id = ANY(CAST(:apps AS uuid[])) AND enabled ORDER BY created_at, id"
)


async def subscriptions_for(session: AsyncSession, job_ids: list[UUID]) -> list[SubscriptionRow]:
    """Callers match (app_id, job_id): a job id alone never crosses tenants."""
    if not job_ids:
        return []
    return [SubscriptionRow(*row) for row in await _SUBSCRIPTIONS_FOR.fetch(session, ids=job_ids)]


async def settlements_for(session: AsyncSession, job_ids: list[UUID]) -> list[SettlementRow]:
    """Callers match (app_id, job_id)."""
    if not job_ids:
        return []
    return [SettlementRow(*row) for row in await _SETTLEMENTS_FOR.fetch(session, ids=job_ids)]


async def enabled_endpoints(session: AsyncSession, app_ids: list[UUID]) -> list[EndpointRow]:
    if not app_ids:
        return []
    return [EndpointRow(*row) for row in await _ENABLED_ENDPOINTS.fetch(session, apps=app_ids)]


# --- messages -----------------------------------------------------------------------------------


_MESSAGE_COLUMNS = (
    ("id", "text"),
    ("app_id", "uuid"),
    ("job_id", "uuid"),
    ("event_type", "text"),
    ("status", "text"),
    ("event_data", "jsonb"),
    ("next_check_at", "timestamptz"),
    ("occurred_at", "timestamptz"),
    ("created_at", "timestamptz"),
)
_INSERT_MESSAGES = _unnest_insert("messages", _MESSAGE_COLUMNS, returning="id")


async def insert_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """The ids actually inserted (an existing id is a replayed event: left alone)."""
    if not rows:
        return set()
    params = _columns(rows, _MESSAGE_COLUMNS)
    params["event_data"] = [json.dumps(data) for data in params["event_data"]]
    return {row[0] for row in await _INSERT_MESSAGES.fetch(session, **params)}


async def get_message(session: AsyncSession, app_id: UUID, message_id: str) -> Message | None:
    result = await session.exec(
        select(Message).where(Message.id == message_id, Message.app_id == app_id)
    )
    return result.first()


_LOCK_JOBS = db.Statement(
    "SELECT pg_advisory_xact_lock(hashtextextended(CAST(k AS text), 7))"
    " FROM (SELECT DISTINCT k FROM unnest(CAST(:ids AS uuid[])) AS k ORDER BY k) AS s"
)


async def lock_jobs(session: AsyncSession, job_ids: Sequence[UUID]) -> None:
    """Serialise the transactions that record facts about the same jobs (a job's end, its
    settlement, its request) until commit: whichever commits second sees the other's rows,
    so a message never waits for a fact that was committed meanwhile. Taken in id order, so
    two batches cannot deadlock on each other."""
    if job_ids:
        await _LOCK_JOBS.execute(session, ids=sorted(set(job_ids)))


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    app_id: UUID
    job_id: UUID | None
    event_type: str
    event_data: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class WaitingMessage(MessageRow):
    """A message waiting for facts (its job's request or settlement), locked by the reader."""

    created_at: datetime


_WAITING_COLUMNS = "id, app_id, job_id, event_type, event_data, occurred_at, created_at"
_LOCK_WAITING_OF = db.Statement(
    f"SELECT {_WAITING_COLUMNS} FROM messages"  # noqa: S608 - module constants only
    " WHERE status = 'waiting' AND (app_id, job_id) IN"
    " (SELECT * FROM unnest(CAST(:apps AS uuid[]), CAST(:jobs AS uuid[])))"
    " ORDER BY id FOR UPDATE"
)
_CLAIM_WAITING = db.Statement(
    f"SELECT {_WAITING_COLUMNS} FROM messages"  # noqa: S608 - module constants only
    " WHERE status = 'waiting' AND next_check_at <= :now"
    " ORDER BY next_check_at LIMIT :limit FOR UPDATE SKIP LOCKED"
)


async def lock_waiting_messages_of(
    session: AsyncSession, jobs: Sequence[tuple[UUID, UUID]]
) -> list[WaitingMessage]:
    """The waiting messages of these (app, job) pairs, locked for this transaction (the
    caller holds the jobs' locks; the waiting-message loop may hold a row briefly: wait)."""
    if not jobs:
        return []
    rows = await _LOCK_WAITING_OF.fetch(
        session, apps=[app for app, _ in jobs], jobs=[job for _, job in jobs]
    )
    return [WaitingMessage(*row) for row in rows]


async def claim_waiting_messages(
    session: AsyncSession, now: datetime, limit: int
) -> list[WaitingMessage]:
    """Waiting messages due for a check, locked for this transaction (resolving them is
    DB-only, so a row lock suffices; other replicas skip them)."""
    return [
        WaitingMessage(*row) for row in await _CLAIM_WAITING.fetch(session, now=now, limit=limit)
    ]


@dataclass(frozen=True)
class MessageUpdate:
    message_id: str
    status: MessageStatus
    next_check_at: datetime | None
    event_data: dict[str, Any]


_SET_MESSAGES = db.Statement(
    """
    UPDATE messages AS m SET
        status = v.status, next_check_at = v.next_check_at, event_data = v.event_data::jsonb
    FROM unnest(
        CAST(:ids AS text[]), CAST(:statuses AS text[]), CAST(:next_at AS timestamptz[]),
        CAST(:data AS text[])
    ) AS v(id, status, next_check_at, event_data)
    WHERE m.id = v.id
    """
)


async def set_messages(session: AsyncSession, updates: Sequence[MessageUpdate]) -> None:
    """New states of many messages in one statement (no ORM bookkeeping per row)."""
    if not updates:
        return
    params = {
        "ids": [u.message_id for u in updates],
        "statuses": [u.status.value for u in updates],
        "next_at": [u.next_check_at for u in updates],
        "data": [json.dumps(u.event_data) for u in updates],
    }
    await _SET_MESSAGES.execute(session, **params)


# --- deliveries ---------------------------------------------------------------------------------


_DELIVERY_COLUMNS = (
    ("id", "text"),
    ("message_id", "text"),
    ("app_id", "uuid"),
    ("job_id", "uuid"),
    ("endpoint_id", "uuid"),
    ("target_key", "text"),
    ("event_type", "text"),
    ("status", "text"),
    ("target_url", "text"),
    ("next_attempt_at", "timestamptz"),
    ("claim_token", "uuid"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
_INSERT_DELIVERIES = _unnest_insert("deliveries", _DELIVERY_COLUMNS, returning="id")


async def insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    return len(await _INSERT_DELIVERIES.fetch(session, **_columns(rows, _DELIVERY_COLUMNS)))


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A leased delivery as the sender needs it (a plain row, no ORM instance)."""

    id: str
    message_id: str
    app_id: UUID
    job_id: UUID | None
    endpoint_id: UUID | None
    target_key: str
    event_type: str
    target_url: str | None
    attempt_count: int
    schedule_offset: int
    claim_token: UUID


_DUE_COLUMNS = (
    "id, message_id, app_id, job_id, endpoint_id, target_key, event_type, target_url,"
    " attempt_count, schedule_offset, claim_token"
)
# The eligible ids (ranked per target, fewer for targets already busy here) are computed once
# into an array, then locked by primary key. A self-join on the ranked rows instead was planned
# as a nested loop re-running the window for every due row (the partial due index is usually
# near-empty, so estimates say 1 row): 1.4 s per claim with 1,000 rows due, against ~5 ms.
_CLAIM_DUE = db.Statement(
    f"""
    WITH pick AS (
        SELECT d.id FROM deliveries AS d
        WHERE d.id = ANY(ARRAY(
            SELECT due.id FROM (
                SELECT x.id, COALESCE(b.n, 0) AS busy, row_number() OVER (
                    PARTITION BY x.target_key ORDER BY x.next_attempt_at) AS rank
                FROM deliveries AS x
                LEFT JOIN unnest(CAST(:busy_keys AS text[]), CAST(:busy_counts AS int[]))
                    AS b(key, n) ON b.key = x.target_key
                WHERE x.status = 'pending' AND x.next_attempt_at <= :now
            ) AS due
            WHERE due.rank <= :target_limit - due.busy
        ))
            AND d.status = 'pending' AND d.next_attempt_at <= :now
        ORDER BY d.next_attempt_at
        LIMIT :limit
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE deliveries AS d SET next_attempt_at = :lease_until, claim_token = :token
    FROM pick WHERE d.id = pick.id
    RETURNING {", ".join("d." + c.strip() for c in _DUE_COLUMNS.split(","))}
    """  # noqa: S608 - built at import from this module's constants
)


async def claim_due(
    session: AsyncSession,
    now: datetime,
    limit: int,
    lease_until: datetime,
    token: UUID,
    *,
    per_target: dict[str, int],
    target_limit: int,
) -> list[DueDelivery]:
    """Lease up to `limit` due deliveries in one statement, at most `target_limit -
    per_target[key]` per target so one slow or dead endpoint cannot fill every slot. Other
    replicas skip them (SKIP LOCKED) and, once leased, see them as not due until
    `lease_until`."""
    rows = await _CLAIM_DUE.fetch(
        session,
        now=now,
        limit=limit,
        lease_until=lease_until,
        token=token,
        target_limit=target_limit,
        busy_keys=list(per_target),
        busy_counts=list(per_target.values()),
    )
    return [DueDelivery(*row) for row in rows]


@dataclass(frozen=True)
class ClaimResult:
    delivery_id: str
    token: UUID
    transition: Transition
    attempt_count: int | None = None
    last_error: str | None = None
    target_url: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery_id: str
    attempt_no: int
    url: str | None
    started_at: datetime
    status_code: int | None
    latency_ms: int | None
    response_excerpt: str | None
    error: str | None


_ATTEMPT_FIELDS = (
    ("delivery_id", "text"),
    ("attempt_no", "int"),
    ("url", "text"),
    ("started_at", "timestamptz"),
    ("status_code", "int"),
    ("latency_ms", "int"),
    ("response_excerpt", "text"),
    ("error", "text"),
)
_FINISH_MANY = db.Statement(
    """
    WITH finished AS (
        UPDATE deliveries AS d SET
            status = v.status,
            next_attempt_at = v.next_at,
            claim_token = NULL,
            updated_at = :now,
            last_error = v.err,
            attempt_count = COALESCE(v.cnt, d.attempt_count),
            target_url = COALESCE(v.url, d.target_url),
            delivered_at = CASE WHEN v.status = 'delivered' THEN :now ELSE d.delivered_at END
        FROM unnest(
            CAST(:ids AS text[]), CAST(:tokens AS uuid[]), CAST(:statuses AS text[]),
            CAST(:next_at AS timestamptz[]), CAST(:errs AS text[]), CAST(:cnts AS int[]),
            CAST(:urls AS text[])
        ) AS v(id, token, status, next_at, err, cnt, url)
        WHERE d.id = v.id AND d.claim_token = v.token
        RETURNING d.id
    ), recorded AS (
        INSERT INTO delivery_attempts
            (delivery_id, attempt_no, url, started_at, status_code, latency_ms,
             response_excerpt, error)
        SELECT a.* FROM unnest(
            CAST(:a_delivery_id AS text[]), CAST(:a_attempt_no AS int[]), CAST(:a_url AS text[]),
            CAST(:a_started_at AS timestamptz[]), CAST(:a_status_code AS int[]),
            CAST(:a_latency_ms AS int[]), CAST(:a_response_excerpt AS text[]),
            CAST(:a_error AS text[])
        ) AS a(delivery_id, attempt_no, url, started_at, status_code, latency_ms,
               response_excerpt, error)
        WHERE a.delivery_id IN (SELECT id FROM finished)
    )
    SELECT id FROM finished
    """
)


async def finish_claims(
    session: AsyncSession,
    results: Sequence[ClaimResult],
    attempts: Sequence[AttemptRow],
    now: datetime,
) -> set[str]:
    """Record a batch of finished sends in one statement: each delivery's new state if its
    lease was still ours, and the attempts of exactly those (a delivery taken over by another
    replica is left alone, its attempt with it). Returns the ids that were ours."""
    if not results:
        return set()
    params: dict[str, Any] = {
        "now": now,
        "ids": [r.delivery_id for r in results],
        "tokens": [r.token for r in results],
        "statuses": [r.transition.status.value for r in results],
        "next_at": [r.transition.next_attempt_at for r in results],
        "errs": [r.last_error for r in results],
        "cnts": [r.attempt_count for r in results],
        "urls": [r.target_url for r in results],
    }
    for name, _ in _ATTEMPT_FIELDS:
        params["a_" + name] = [getattr(a, name) for a in attempts]
    return {row[0] for row in await _FINISH_MANY.fetch(session, **params)}


async def release_claims(session: AsyncSession, token: UUID, ids: list[str], now: datetime) -> None:
    """Hand unfinished claims back at shutdown so another replica need not wait for the lease
    (and wake the others: the rows are due now)."""
    await session.exec(
        update(Delivery)
        .where(col(Delivery.id).in_(ids), col(Delivery.claim_token) == token)
        .values(claim_token=None, next_attempt_at=now)
    )
    await notify_due(session)


@dataclass(frozen=True, slots=True)
class DueOutlook:
    """What is left after a claim: the earliest time a pending row becomes claimable (a
    scheduled retry, a first attempt with a delay, a lease that runs out) and the targets
    whose due rows were held back (their per-target bound, or locked by another claim)."""

    next_due_at: datetime | None
    held_back: frozenset[str]


# Two range scans of the partial due index (rows leased meanwhile have their lease end as
# next_attempt_at, so they count as "due later", at the time the lease runs out).
_DUE_OUTLOOK = db.Statement(
    """
    SELECT
        (SELECT min(next_attempt_at) FROM deliveries
            WHERE status = 'pending' AND next_attempt_at > :now),
        ARRAY(SELECT DISTINCT target_key FROM deliveries
            WHERE status = 'pending' AND next_attempt_at <= :now)
    """
)


async def due_outlook(session: AsyncSession, now: datetime) -> DueOutlook:
    (row,) = await _DUE_OUTLOOK.fetch(session, now=now)
    return DueOutlook(row[0], frozenset(row[1] or ()))


@dataclass(frozen=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    job_id: UUID | None = None
    endpoint_id: UUID | None = None
    since: datetime | None = None
    before: tuple[datetime, str] | None = None  # cursor: strictly older than (created_at, id)


async def list_deliveries(
    session: AsyncSession, app_id: UUID, where: DeliveryFilter, limit: int
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    """Newest first, ties by id descending (the cursor's order)."""
    query = select(Delivery).where(Delivery.app_id == app_id)
    if where.status is not None:
        query = query.where(Delivery.status == where.status.value)
    if where.job_id is not None:
        query = query.where(Delivery.job_id == where.job_id)
    if where.endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == where.endpoint_id)
    if where.since is not None:
        query = query.where(col(Delivery.created_at) >= where.since)
    if where.before is not None:
        query = query.where(
            tuple_(col(Delivery.created_at), col(Delivery.id)) < tuple_(*where.before)
        )
    deliveries = (
        await session.exec(
            query.order_by(col(Delivery.created_at).desc(), col(Delivery.id).desc()).limit(limit)
        )
    ).all()
    attempts = await attempts_of(session, [d.id for d in deliveries])
    return [(d, attempts[d.id]) for d in deliveries]


async def attempts_of(
    session: AsyncSession, delivery_ids: list[str]
) -> dict[str, list[DeliveryAttempt]]:
    attempts: dict[str, list[DeliveryAttempt]] = defaultdict(list)
    if delivery_ids:
        for attempt in (
            await session.exec(
                select(DeliveryAttempt)
                .where(col(DeliveryAttempt.delivery_id).in_(delivery_ids))
                .order_by(col(DeliveryAttempt.delivery_id), col(DeliveryAttempt.attempt_no))
            )
        ).all():
            attempts[attempt.delivery_id].append(attempt)
    return attempts


async def get_delivery(
    session: AsyncSession, app_id: UUID, delivery_id: str, *, for_update: bool = False
) -> Delivery | None:
    query = select(Delivery).where(Delivery.id == delivery_id, Delivery.app_id == app_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


@dataclass(frozen=True, slots=True)
class SignerRow:
    """What signs a delivery: an endpoint (`id` set, with its URL and state) or an app's
    signing secret for jobs' own URLs (`id` None)."""

    app_id: UUID
    secret_encrypted: str
    previous_secret_encrypted: str | None
    previous_expires_at: datetime | None
    id: UUID | None = None
    url: str = ""
    enabled: bool = True
    failing_since: datetime | None = None


@dataclass(frozen=True)
class DeliveryContext:
    """The rows a batch of leased deliveries needs to be sent, keyed by id."""

    messages: dict[str, MessageRow]
    endpoints: dict[UUID, SignerRow]
    app_secrets: dict[UUID, SignerRow]


_CONTEXT_MESSAGES = db.Statement(
    "SELECT id, app_id, job_id, event_type, event_data, occurred_at FROM messages"
    " WHERE id = ANY(CAST(:ids AS text[]))"
)
_CONTEXT_ENDPOINTS = db.Statement(
    "SELECT app_id, secret_encrypted, previous_secret_encrypted, previous_expires_at, id, url,"
    " enabled, failing_since FROM endpoints WHERE id = ANY(CAST(:ids AS uuid[]))"
)
_CONTEXT_SECRETS = db.Statement(
    "SELECT app_id, secret_encrypted, previous_secret_encrypted, previous_expires_at"
    " FROM signing_secrets WHERE app_id = ANY(CAST(:ids AS uuid[]))"
)


async def app_signers(session: AsyncSession, app_ids: list[UUID]) -> dict[UUID, SignerRow]:
    """The apps' signing secrets (for jobs' own URLs), keyed by app id."""
    if not app_ids:
        return {}
    rows = await _CONTEXT_SECRETS.fetch(session, ids=app_ids)
    return {s.app_id: s for s in (SignerRow(*row) for row in rows)}


async def delivery_context(session: AsyncSession, rows: Sequence[DueDelivery]) -> DeliveryContext:
    """Messages, endpoints and app secrets of the leased deliveries as plain rows (the
    dispatcher matches each on the delivery's own app_id)."""
    message_ids = list({r.message_id for r in rows})
    endpoint_ids = list({r.endpoint_id for r in rows if r.endpoint_id is not None})
    override_apps = list({r.app_id for r in rows if r.endpoint_id is None})

    async def read(statement: db.Statement, ids: list[Any]) -> Sequence[Any]:
        return await statement.fetch(session, ids=ids) if ids else []

    messages = [MessageRow(*m) for m in await read(_CONTEXT_MESSAGES, message_ids)]
    endpoints = [SignerRow(*e) for e in await read(_CONTEXT_ENDPOINTS, endpoint_ids)]
    return DeliveryContext(
        messages={m.id: m for m in messages},
        endpoints={e.id: e for e in endpoints if e.id is not None},
        app_secrets=await app_signers(session, override_apps),
    )


def _replay_values(now: datetime) -> dict[str, Any]:
    return {
        "status": DeliveryStatus.PENDING.value,
        "next_attempt_at": now,
        "schedule_offset": Delivery.__table__.c.attempt_count,
        "claim_token": None,
        "last_error": None,
        "updated_at": now,
    }


async def replay_delivery(
    session: AsyncSession, app_id: UUID, delivery_id: str, now: datetime
) -> bool:
    """A finished delivery goes again under the same webhook-id; False if it is still pending."""
    result = await session.exec(
        update(Delivery)
        .where(
            col(Delivery.app_id) == app_id,
            col(Delivery.id) == delivery_id,
            col(Delivery.status) != DeliveryStatus.PENDING,
        )
        .values(**_replay_values(now))
    )
    return bool(result.rowcount)


async def replay_failed(
    session: AsyncSession,
    app_id: UUID,
    since: datetime,
    now: datetime,
    endpoint_id: UUID | None = None,
    statuses: Sequence[DeliveryStatus] = (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED),
) -> int:
    """Every delivery of the app in one of `statuses` created since `since` (of enabled
    endpoints or jobs' own URLs) goes again."""
    enabled = select(col(Endpoint.id)).where(
        col(Endpoint.app_id) == app_id, col(Endpoint.enabled).is_(True)
    )
    stmt = update(Delivery).where(
        col(Delivery.app_id) == app_id,
        col(Delivery.status).in_([s.value for s in statuses]),
        col(Delivery.created_at) >= since,
        or_(col(Delivery.endpoint_id).is_(None), col(Delivery.endpoint_id).in_(enabled)),
    )
    if endpoint_id is not None:
        stmt = stmt.where(col(Delivery.endpoint_id) == endpoint_id)
    result = await session.exec(stmt.values(**_replay_values(now)))
    return int(result.rowcount or 0)
