"""Endpoint rules with no I/O: event-type filters, health (5-day / 410 disable), rotation."""

from datetime import datetime, timedelta
from enum import StrEnum

from genhub_notifier.domain.delivery import WebhookEventType
from genhub_notifier.domain.response import Decision, Reason

DESCRIPTION_MAX = 500


class DisableReason(StrEnum):
    ENDPOINT_GONE = "endpoint_gone"  # answered 410 Gone
    FAILING = "failing"  # every attempt failed for the configured period (5 days)


def normalise_event_types(values: list[str] | None) -> tuple[str, ...] | None:
    """None (every type) or a sorted, de-duplicated tuple; raises ValueError on unknown types."""
    if values is None:
        return None
    known = {t.value for t in WebhookEventType}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    if not values:
        raise ValueError("event_types must list at least one type (or be null for all)")
    return tuple(sorted(set(values)))


def disable_reason(
    decision: Decision, failing_since: datetime | None, now: datetime, disable_after: timedelta
) -> DisableReason | None:
    """Whether an endpoint is disabled after an attempt: 410 at once; otherwise when its run of
    failures (`failing_since`, None after a success) has lasted `disable_after`."""
    if decision.reason is Reason.DELIVERED:
        return None
    if decision.reason is Reason.ENDPOINT_GONE:
        return DisableReason.ENDPOINT_GONE
    if failing_since is not None and now - failing_since >= disable_after:
        return DisableReason.FAILING
    return None


def signing_secrets(
    current: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """Secrets to sign with: the current one, plus the rotated-out one during its grace period
    (receivers holding either secret verify; Standard Webhooks space-separated signatures)."""
    if previous is not None and previous_expires_at is not None and now < previous_expires_at:
        return [current, previous]
    return [current]
