"""Turn messages into deliveries once the facts they need are known (one per target).

`plan()` decides for one message from the facts at hand; `record_messages()` does it for a
whole Kafka batch with a handful of set-based statements, `resolve_many()` for waiting ones.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.tables import Endpoint
from genhub_notifier.domain.body import iso8601
from genhub_notifier.domain.delivery import (
    DeliveryStatus,
    EndpointRef,
    MessageStatus,
    Target,
    WebhookEventType,
    delivery_id,
    disabled_message_id,
    message_readiness,
    targets,
)
from genhub_notifier.domain.exhaustion import Exhaustion

log = logging.getLogger(__name__)


class Handoff(Protocol):
    """Takes new deliveries to send in this process straight after the commit: it marks the
    rows it takes leased (`claim_token`, `next_attempt_at` = lease end) before they are
    inserted, so the lease is committed with them, and returns how many it took. A crash
    after the commit leaves them leased until the lease ends; then any replica claims them."""

    def lease_new(
        self,
        session: AsyncSession,
        rows: list[dict[str, Any]],
        messages: dict[str, repo.MessageRow],
        endpoints: dict[UUID, repo.SignerRow],
        app_secrets: dict[UUID, repo.SignerRow],
    ) -> int: ...


def signer_row(e: repo.EndpointRow) -> repo.SignerRow:
    return repo.SignerRow(
        app_id=e.app_id,
        secret_encrypted=e.secret_encrypted,
        previous_secret_encrypted=e.previous_secret_encrypted,
        previous_expires_at=e.previous_expires_at,
        id=e.id,
        url=e.url,
        enabled=e.enabled,
        failing_since=e.failing_since,
    )


async def _insert_and_hand_off(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    messages: dict[str, repo.MessageRow],
    endpoints: dict[UUID, list[repo.EndpointRow]],
    handoff: Handoff | None,
) -> None:
    """Insert new deliveries; the ones the hand-off takes go out from this process after the
    commit, the rest wake the dispatchers (NOTIFY at commit). Rows for jobs' own URLs are
    signed with the app's signing secret, read here for the apps that have such rows."""
    taken = 0
    if handoff is not None and rows:
        wanted = {r["endpoint_id"] for r in rows}
        signers = {e.id: signer_row(e) for es in endpoints.values() for e in es if e.id in wanted}
        own_url_apps = list({r["app_id"] for r in rows if r["endpoint_id"] is None})
        app_secrets = await repo.app_signers(session, own_url_apps)
        taken = handoff.lease_new(session, rows, messages, signers, app_secrets)
    await repo.insert_deliveries(session, rows)
    if taken < len(rows):
        await repo.notify_due(session)


@dataclass(frozen=True)
class FanoutConfig:
    subscription_wait: timedelta = timedelta(minutes=15)
    settlement_wait: timedelta = timedelta(seconds=30)
    recheck: timedelta = timedelta(seconds=5)
    first_attempt_delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class NewMessage:
    id: str
    app_id: UUID
    job_id: UUID | None
    event_type: WebhookEventType
    event_data: dict[str, Any]
    occurred_at: datetime
    exclude_endpoint: UUID | None = None  # the endpoint the message is about


@dataclass(frozen=True)
class Plan:
    status: MessageStatus
    next_check_at: datetime | None
    data: dict[str, Any]
    targets: list[Target]


def endpoint_ref(e: repo.EndpointRow) -> EndpointRef:
    return EndpointRef(
        e.id, e.url, tuple(e.event_types) if e.event_types is not None else None, e.enabled
    )


def plan(
    event_type: WebhookEventType,
    event_data: dict[str, Any],
    created_at: datetime,
    subscription: repo.SubscriptionRow | None,
    settlement: repo.SettlementRow | None,
    endpoints: Sequence[repo.EndpointRow],
    config: FanoutConfig,
    now: datetime,
    exclude_endpoint: UUID | None = None,
) -> Plan:
    """What happens to a message given what is known now (no I/O)."""
    readiness = message_readiness(
        event_type=event_type,
        subscription_known=subscription is not None,
        settled=settlement is not None,
        created_at=created_at,
        now=now,
        subscription_wait=config.subscription_wait,
        settlement_wait=config.settlement_wait,
        recheck=config.recheck,
    )
    data = dict(event_data)
    if readiness.status is MessageStatus.WAITING:
        return Plan(readiness.status, readiness.next_check_at, data, [])
    if readiness.status is MessageStatus.NO_ENDPOINT:
        data["no_endpoint_reason"] = readiness.reason
        return Plan(readiness.status, None, data, [])
    if subscription is not None:  # snapshot: the body no longer depends on other rows
        data.update(
            user_id=data.get("user_id") or subscription.user_id,
            model=subscription.model,
            metadata=subscription.job_metadata,
            requested_at=iso8601(subscription.requested_at) if subscription.requested_at else None,
        )
    if settlement is not None:
        data.update(tokens_charged=settlement.charged, tokens_refunded=settlement.refunded)
    override = subscription.webhook_url if subscription is not None else None
    chosen = targets(event_type, override, [endpoint_ref(e) for e in endpoints], exclude_endpoint)
    if not chosen:
        data["no_endpoint_reason"] = "no job webhook_url and no enabled endpoint for this type"
        return Plan(MessageStatus.NO_ENDPOINT, None, data, [])
    return Plan(MessageStatus.DISPATCHED, None, data, chosen)


def _delivery_rows(
    message_id: str,
    app_id: UUID,
    job_id: UUID | None,
    event_type: WebhookEventType,
    chosen: list[Target],
    config: FanoutConfig,
    now: datetime,
) -> list[dict[str, Any]]:
    return [
        {
            "id": delivery_id(message_id, t.key),
            "message_id": message_id,
            "app_id": app_id,
            "job_id": job_id,
            "endpoint_id": t.endpoint_id,
            "target_key": t.key,
            "event_type": event_type.value,
            "status": DeliveryStatus.PENDING.value,
            "target_url": t.url,
            "next_attempt_at": now + config.first_attempt_delay,
            "claim_token": None,
            "created_at": now,
            "updated_at": now,
        }
        for t in chosen
    ]


@dataclass(frozen=True)
class _Facts:
    """What a batch of messages needs to be planned, keyed by (app_id, job_id) / app_id."""

    subscriptions: dict[tuple[UUID, UUID | None], repo.SubscriptionRow]
    settlements: dict[tuple[UUID, UUID | None], repo.SettlementRow]
    endpoints: dict[UUID, list[repo.EndpointRow]]


async def _facts(
    session: AsyncSession, messages: Sequence[repo.WaitingMessage | NewMessage]
) -> _Facts:
    """Three reads for a whole batch; matched on (app_id, job_id), never on a job id alone."""
    job_ids = list({m.job_id for m in messages if m.job_id is not None})
    endpoints: dict[UUID, list[repo.EndpointRow]] = defaultdict(list)
    for e in await repo.enabled_endpoints(session, list({m.app_id for m in messages})):
        endpoints[e.app_id].append(e)
    return _Facts(
        {(s.app_id, s.job_id): s for s in await repo.subscriptions_for(session, job_ids)},
        {(s.app_id, s.job_id): s for s in await repo.settlements_for(session, job_ids)},
        endpoints,
    )


async def resolve_many(
    session: AsyncSession,
    messages: Sequence[repo.WaitingMessage],
    config: FanoutConfig,
    now: datetime,
    handoff: Handoff | None = None,
) -> int:
    """Re-plan waiting messages (the caller holds their row locks): the facts for the whole
    batch in three reads, their deliveries in one insert, their new states in one update."""
    if not messages:
        return 0
    facts = await _facts(session, messages)
    updates: list[repo.MessageUpdate] = []
    rows: list[dict[str, Any]] = []
    planned: dict[str, repo.MessageRow] = {}
    for message in messages:
        event_type = WebhookEventType(message.event_type)
        key = (message.app_id, message.job_id)
        is_job = event_type.is_job_event and message.job_id is not None
        result = plan(
            event_type,
            message.event_data,
            message.created_at,
            facts.subscriptions.get(key) if is_job else None,
            facts.settlements.get(key) if is_job and event_type.needs_settlement else None,
            facts.endpoints[message.app_id],
            config,
            now,
        )
        rows += _delivery_rows(
            message.id, message.app_id, message.job_id, event_type, result.targets, config, now
        )
        updates.append(
            repo.MessageUpdate(message.id, result.status, result.next_check_at, result.data)
        )
        planned[message.id] = repo.MessageRow(
            message.id,
            message.app_id,
            message.job_id,
            message.event_type,
            result.data,
            message.occurred_at,
        )
    await _insert_and_hand_off(session, rows, planned, facts.endpoints, handoff)
    await repo.set_messages(session, updates)
    return len(messages)


async def record_messages(
    session: AsyncSession,
    config: FanoutConfig,
    items: list[NewMessage],
    now: datetime,
    handoff: Handoff | None = None,
    *,
    jobs_locked: bool = False,
) -> int:
    """Insert new messages (idempotent by id) already planned, and their deliveries. A few
    statements for the whole batch; returns how many messages were new. `jobs_locked`: the
    caller already holds the locks of the messages' jobs."""
    items = list({m.id: m for m in reversed(items)}.values())[::-1]  # first of each id
    if not items:
        return 0
    # A job's settlement or request recorded concurrently is either committed before these
    # reads or finds these messages waiting once this commits (repo.lock_jobs).
    if not jobs_locked:
        await repo.lock_jobs(
            session,
            [m.job_id for m in items if m.event_type.is_job_event and m.job_id is not None],
        )
    facts = await _facts(session, items)

    def job_facts(m: NewMessage) -> tuple[repo.SubscriptionRow | None, repo.SettlementRow | None]:
        """Only job events use their job's facts: an announcement about a job's delivery
        never goes to that job's own webhook_url."""
        if not m.event_type.is_job_event:
            return None, None
        key = (m.app_id, m.job_id)
        return facts.subscriptions.get(key), facts.settlements.get(key)

    planned = [
        (
            m,
            plan(
                m.event_type,
                m.event_data,
                now,
                *job_facts(m),
                facts.endpoints[m.app_id],
                config,
                now,
                m.exclude_endpoint,
            ),
        )
        for m in items
    ]
    created = await repo.insert_messages(
        session,
        [
            {
                "id": m.id,
                "app_id": m.app_id,
                "job_id": m.job_id,
                "event_type": m.event_type.value,
                "status": p.status.value,
                "event_data": p.data,
                "next_check_at": p.next_check_at,
                "occurred_at": m.occurred_at,
                "created_at": now,
            }
            for m, p in planned
        ],
    )
    rows = [
        row
        for m, p in planned
        if m.id in created
        for row in _delivery_rows(m.id, m.app_id, m.job_id, m.event_type, p.targets, config, now)
    ]
    messages = {
        m.id: repo.MessageRow(m.id, m.app_id, m.job_id, m.event_type.value, p.data, m.occurred_at)
        for m, p in planned
        if m.id in created and p.targets
    }
    await _insert_and_hand_off(session, rows, messages, facts.endpoints, handoff)
    return len(created)


async def announce_disabled(
    session: AsyncSession, config: FanoutConfig, endpoint: Endpoint, now: datetime
) -> None:
    """`endpoint.disabled` to the app's other endpoints (the disabled one is excluded: it is
    disabled)."""
    disabled_at = endpoint.disabled_at or now
    await record_messages(
        session,
        config,
        [
            NewMessage(
                id=disabled_message_id(endpoint.id, disabled_at),
                app_id=endpoint.app_id,
                job_id=None,
                event_type=WebhookEventType.ENDPOINT_DISABLED,
                event_data={
                    "endpoint_id": str(endpoint.id),
                    "url": endpoint.url,
                    "reason": endpoint.disabled_reason,
                    "disabled_at": iso8601(disabled_at),
                },
                occurred_at=disabled_at,
            )
        ],
        now,
    )


async def announce_exhausted(
    session: AsyncSession, config: FanoutConfig, exhausted: Sequence[Exhaustion], now: datetime
) -> int:
    """`delivery.exhausted` to each app's other enabled endpoints that accept it (the failed
    endpoint is excluded; an exhausted `delivery.exhausted` is not announced again)."""
    return await record_messages(
        session,
        config,
        [
            NewMessage(
                id=e.message_id,
                app_id=e.app_id,
                job_id=e.job_id,
                event_type=WebhookEventType.DELIVERY_EXHAUSTED,
                event_data=e.data(),
                occurred_at=e.at,
                exclude_endpoint=e.endpoint_id,
            )
            for e in exhausted
            if e.announced
        ],
        now,
    )
