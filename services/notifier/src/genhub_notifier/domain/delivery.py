"""Delivery identity and state machine.

```
waiting_subscription ──subscription with url──▶ pending ──2xx──▶ delivered
        │  └─subscription without url / waited too long──▶ no_endpoint
pending ──failure, schedule left──▶ pending (later)
pending ──failure, schedule done / URL refused / 410──▶ dead
```

What an attempt's result means is decided in `domain.response.decide`.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from genhub_contracts import JobStatus

# Fixed namespace: the same (job, event type) always maps to the same delivery id, on any replica.
_DELIVERY_NAMESPACE = uuid.UUID("6f1d3a52-8a0e-4c55-9a57-3f4b1f0f2c11")


class WebhookEventType(StrEnum):
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"
    REJECTED = "job.rejected"

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.value.removeprefix("job."))

    @classmethod
    def for_status(cls, status: JobStatus) -> "WebhookEventType":
        try:
            return cls(f"job.{status.value}")
        except ValueError:
            raise ValueError(f"no webhook for non-terminal status {status}") from None


class DeliveryStatus(StrEnum):
    WAITING_SUBSCRIPTION = "waiting_subscription"
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    NO_ENDPOINT = "no_endpoint"

    @property
    def is_terminal(self) -> bool:
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.NO_ENDPOINT)


DUE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.WAITING_SUBSCRIPTION)


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYABLE = "retryable"  # non-2xx, timeout, network, storage down: try again later
    PERMANENT = "permanent"  # refused URL: retrying cannot help


@dataclass(frozen=True)
class Transition:
    status: DeliveryStatus
    next_attempt_at: datetime | None


def delivery_id(job_id: uuid.UUID, event_type: WebhookEventType) -> str:
    """Stable id per (job, event type): the `webhook-id` on every attempt and the dedupe key."""
    return "msg_" + uuid.uuid5(_DELIVERY_NAMESPACE, f"{job_id}:{event_type.value}").hex


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


def initial_status(subscription_known: bool, webhook_url: str | None) -> DeliveryStatus:
    """Status of a new delivery, given what we know of the job's subscription."""
    if not subscription_known:
        return DeliveryStatus.WAITING_SUBSCRIPTION
    return DeliveryStatus.PENDING if webhook_url else DeliveryStatus.NO_ENDPOINT


def resolve_waiting(
    *,
    subscription_known: bool,
    webhook_url: str | None,
    created_at: datetime,
    now: datetime,
    max_wait: timedelta,
    recheck: timedelta,
) -> Transition:
    """A waiting delivery's next step: send now, keep waiting, or give up."""
    if subscription_known:
        status = initial_status(True, webhook_url)
        return Transition(status, now if status is DeliveryStatus.PENDING else None)
    if now - created_at >= max_wait:
        return Transition(DeliveryStatus.NO_ENDPOINT, None)
    return Transition(DeliveryStatus.WAITING_SUBSCRIPTION, now + recheck)
