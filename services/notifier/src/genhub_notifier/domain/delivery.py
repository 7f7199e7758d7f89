"""Messages, deliveries and their identities and state machines.

A *message* is one event for an app (`webhook-id` = message id, the receiver's dedupe key). It
may wait for facts it needs (the job's `job.requested`, the job's `tokens.settled`), then fans
out into one *delivery* per target: the job's own `webhook_url` when it has one (an override),
else each enabled endpoint of the app whose event-type filter accepts the type.

```
message:  waiting ──facts known (or settlement waited long enough)──▶ dispatched
             └──no job.requested in time / no target──▶ no_endpoint
delivery: pending ──2xx──▶ delivered
          pending ──failure, schedule left──▶ pending (later)
          pending ──schedule exhausted──▶ dead_lettered (+ a `delivery.exhausted` message)
          pending ──410 / URL refused / endpoint disabled or deleted──▶ failed
          delivered|failed|dead_lettered ──replay──▶ pending (same webhook-id)
```

What an attempt's result means is decided in `domain.response.decide`.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from genhub_contracts import JobStatus

# Fixed namespace: the same facts always map to the same ids, on any replica.
_NAMESPACE = uuid.UUID("6f1d3a52-8a0e-4c55-9a57-3f4b1f0f2c11")


class WebhookEventType(StrEnum):
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"
    REJECTED = "job.rejected"
    LOW_BALANCE = "tokens.low_balance"
    ENDPOINT_DISABLED = "endpoint.disabled"
    DELIVERY_EXHAUSTED = "delivery.exhausted"

    @property
    def is_job_event(self) -> bool:
        return self.value.startswith("job.")

    @property
    def needs_settlement(self) -> bool:
        """Billing settles (posts or voids) a hold for these; the body reports tokens charged."""
        return self in (
            WebhookEventType.SUCCEEDED,
            WebhookEventType.FAILED,
            WebhookEventType.CANCELLED,
        )

    @property
    def job_status(self) -> JobStatus:
        if not self.is_job_event:
            raise ValueError(f"{self.value} is not a job event")
        return JobStatus(self.value.removeprefix("job."))

    @classmethod
    def for_status(cls, status: JobStatus) -> "WebhookEventType":
        try:
            return cls(f"job.{status.value}")
        except ValueError:
            raise ValueError(f"no webhook for non-terminal status {status}") from None


class MessageStatus(StrEnum):
    WAITING = "waiting"
    DISPATCHED = "dispatched"
    NO_ENDPOINT = "no_endpoint"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # stopped for good (410, refused URL, endpoint disabled or deleted)
    DEAD_LETTERED = "dead_lettered"  # every scheduled attempt failed; replay brings it back

    @property
    def is_terminal(self) -> bool:
        return self is not DeliveryStatus.PENDING


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYABLE = "retryable"  # non-2xx, timeout, network, storage down: try again later
    PERMANENT = "permanent"  # refused URL, 410: retrying cannot help


@dataclass(frozen=True)
class Transition:
    status: DeliveryStatus
    next_attempt_at: datetime | None


def _mint(*parts: object) -> str:
    return uuid.uuid5(_NAMESPACE, ":".join(str(p) for p in parts)).hex


def job_message_id(job_id: uuid.UUID, event_type: WebhookEventType) -> str:
    """Stable per (job, event type): a replayed Kafka event maps to the same message."""
    return "msg_" + _mint(job_id, event_type.value)


def event_message_id(event_id: uuid.UUID) -> str:
    """For app events (low balance): one message per Kafka event id."""
    return "msg_" + _mint("event", event_id)


def disabled_message_id(endpoint_id: uuid.UUID, disabled_at: datetime) -> str:
    return "msg_" + _mint("disabled", endpoint_id, disabled_at.isoformat())


def exhausted_message_id(delivery_id: str, attempts: int) -> str:
    """One `delivery.exhausted` message per exhaustion (a replayed delivery that runs out of
    attempts again is a new one)."""
    return "msg_" + _mint("exhausted", delivery_id, attempts)


def delivery_id(message_id: str, target_key: str) -> str:
    """One delivery per (message, target): fanning out twice never sends twice."""
    return "dlv_" + _mint(message_id, target_key)


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


# --- waiting for the facts a message needs --------------------------------------------------------


MIN_RECHECK = timedelta(milliseconds=100)


@dataclass(frozen=True)
class Readiness:
    status: MessageStatus  # WAITING: check again at `next_check_at`
    next_check_at: datetime | None = None
    reason: str | None = None


def message_readiness(
    *,
    event_type: WebhookEventType,
    subscription_known: bool,
    settled: bool,
    created_at: datetime,
    now: datetime,
    subscription_wait: timedelta,
    settlement_wait: timedelta,
    recheck: timedelta,
) -> Readiness:
    """Whether a message can fan out now (DISPATCHED), must wait, or never will (NO_ENDPOINT).

    Job messages need the job's `job.requested` (override URL, metadata, model). Succeeded /
    failed / cancelled ones also wait, at most `settlement_wait`, for billing's `tokens.settled`
    so the body can say what was charged; after that they go out with `tokens_charged: null`.
    """
    waited = now - created_at
    # The fact usually arrives within milliseconds (its event is already on its way, and its
    # handler wakes the message); if that wake-up raced with this message's insert, look again
    # soon, then back off to `recheck`.
    step = min(max(waited, MIN_RECHECK), recheck)
    if event_type.is_job_event and not subscription_known:
        if waited >= subscription_wait:
            return Readiness(MessageStatus.NO_ENDPOINT, reason="no job.requested seen in time")
        return Readiness(MessageStatus.WAITING, now + step)
    if event_type.needs_settlement and not settled and waited < settlement_wait:
        return Readiness(MessageStatus.WAITING, min(now + step, created_at + settlement_wait))
    return Readiness(MessageStatus.DISPATCHED)


# --- fan-out ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointRef:
    id: uuid.UUID
    url: str
    event_types: tuple[str, ...] | None  # None: every type
    enabled: bool

    def accepts(self, event_type: WebhookEventType) -> bool:
        return self.enabled and (self.event_types is None or event_type.value in self.event_types)


@dataclass(frozen=True)
class Target:
    key: str  # endpoint id, or "url:" + the override URL; the per-endpoint concurrency key
    url: str
    endpoint_id: uuid.UUID | None


def override_key(url: str) -> str:
    return "url:" + url


def targets(
    event_type: WebhookEventType,
    override_url: str | None,
    endpoints: list[EndpointRef],
    exclude: uuid.UUID | None = None,
) -> list[Target]:
    """A job's own `webhook_url` replaces the app's endpoints for that job's events (signed with
    the app's signing secret); otherwise every enabled endpoint whose filter accepts the type,
    except `exclude` (the endpoint an announcement is about)."""
    if override_url:
        return [Target(override_key(override_url), override_url, None)]
    return [
        Target(str(e.id), e.url, e.id)
        for e in endpoints
        if e.accepts(event_type) and e.id != exclude
    ]
