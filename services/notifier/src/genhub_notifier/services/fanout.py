"""Turn a message into deliveries once the facts it needs are known (one per target)."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.tables import Endpoint, Message
from genhub_notifier.domain.body import iso8601
from genhub_notifier.domain.delivery import (
    DeliveryStatus,
    EndpointRef,
    MessageStatus,
    WebhookEventType,
    delivery_id,
    disabled_message_id,
    message_readiness,
    targets,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FanoutConfig:
    subscription_wait: timedelta = timedelta(minutes=15)
    settlement_wait: timedelta = timedelta(seconds=30)
    recheck: timedelta = timedelta(seconds=5)
    first_attempt_delay: timedelta = timedelta(0)


def endpoint_ref(e: Endpoint) -> EndpointRef:
    return EndpointRef(
        e.id, e.url, tuple(e.event_types) if e.event_types is not None else None, e.enabled
    )


async def resolve(
    session: AsyncSession, message: Message, config: FanoutConfig, now: datetime
) -> MessageStatus:
    """Fan the message out if it is ready (deliveries due now, dispatchers woken at commit),
    or record when to look again. The caller holds the message row (new or locked)."""
    event_type = WebhookEventType(message.event_type)
    subscription = settlement = None
    if event_type.is_job_event and message.job_id is not None:
        subscription = await repo.get_subscription(session, message.app_id, message.job_id)
        if event_type.needs_settlement:
            settlement = await repo.get_settlement(session, message.app_id, message.job_id)
    readiness = message_readiness(
        event_type=event_type,
        subscription_known=subscription is not None,
        settled=settlement is not None,
        created_at=message.created_at,
        now=now,
        subscription_wait=config.subscription_wait,
        settlement_wait=config.settlement_wait,
        recheck=config.recheck,
    )
    if readiness.status is MessageStatus.WAITING:
        await repo.set_message(session, message.id, readiness.status, readiness.next_check_at)
        return readiness.status
    data: dict[str, Any] = dict(message.event_data)
    if readiness.status is MessageStatus.NO_ENDPOINT:
        data["no_endpoint_reason"] = readiness.reason
        await repo.set_message(session, message.id, readiness.status, None, data)
        return readiness.status
    if subscription is not None:  # snapshot: the body no longer depends on other rows
        data.update(
            user_id=data.get("user_id") or subscription.user_id,
            model=subscription.model,
            metadata=subscription.job_metadata,
            requested_at=iso8601(subscription.requested_at) if subscription.requested_at else None,
        )
    if settlement is not None:
        data.update(tokens_charged=settlement.charged, tokens_refunded=settlement.refunded)
    endpoints = [endpoint_ref(e) for e in await repo.list_endpoints(session, message.app_id)]
    chosen = targets(event_type, subscription.webhook_url if subscription else None, endpoints)
    if not chosen:
        data["no_endpoint_reason"] = "no job webhook_url and no enabled endpoint for this type"
        await repo.set_message(session, message.id, MessageStatus.NO_ENDPOINT, None, data)
        return MessageStatus.NO_ENDPOINT
    first_attempt = now + config.first_attempt_delay
    await repo.insert_deliveries(
        session,
        [
            {
                "id": delivery_id(message.id, t.key),
                "message_id": message.id,
                "app_id": message.app_id,
                "job_id": message.job_id,
                "endpoint_id": t.endpoint_id,
                "target_key": t.key,
                "event_type": event_type.value,
                "status": DeliveryStatus.PENDING.value,
                "target_url": t.url,
                "next_attempt_at": first_attempt,
                "created_at": now,
                "updated_at": now,
            }
            for t in chosen
        ],
    )
    await repo.set_message(session, message.id, MessageStatus.DISPATCHED, None, data)
    await repo.notify_due(session)
    log.info(
        "message dispatched",
        extra={"message_id": message.id, "type": event_type.value, "deliveries": len(chosen)},
    )
    return MessageStatus.DISPATCHED


async def record_message(
    session: AsyncSession,
    config: FanoutConfig,
    *,
    message_id: str,
    app_id: Any,
    job_id: Any,
    event_type: WebhookEventType,
    event_data: dict[str, Any],
    occurred_at: datetime,
    now: datetime,
) -> bool:
    """Insert the message (idempotent by id) and fan it out if it is ready; False if it
    existed (a replayed event changes nothing)."""
    values: dict[str, Any] = {
        "id": message_id,
        "app_id": app_id,
        "job_id": job_id,
        "event_type": event_type.value,
        "status": MessageStatus.WAITING.value,
        "event_data": event_data,
        "next_check_at": now,
        "occurred_at": occurred_at,
        "created_at": now,
    }
    created = await repo.insert_message(session, **values)
    if created:  # this transaction inserted (and so holds) the row
        await resolve(session, Message(**values), config, now)
    return created


async def announce_disabled(
    session: AsyncSession, config: FanoutConfig, endpoint: Endpoint, now: datetime
) -> None:
    """`endpoint.disabled` to the app's other endpoints (the disabled one is excluded: it is
    disabled)."""
    disabled_at = endpoint.disabled_at or now
    await record_message(
        session,
        config,
        message_id=disabled_message_id(endpoint.id, disabled_at),
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
        now=now,
    )
