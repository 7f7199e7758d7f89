"""What one webhook attempt's result means for its delivery (Standard Webhooks / Svix rules).

| result                              | decision                                                  |
|-------------------------------------|-----------------------------------------------------------|
| 2xx                                 | delivered                                                 |
| URL refused by the SSRF guard       | failed (`url_refused`) at once                            |
| 410 Gone                            | failed (`endpoint_gone`) at once                          |
| 3xx (redirects are never followed)  | retry per schedule                                        |
| 429 / 503 with `Retry-After`        | retry at max(schedule, Retry-After clamped to [1 s, 1 h]) |
| other 4xx/5xx, timeout, no response | retry per schedule                                        |
| any failure after the last attempt  | dead_lettered (`retries_exhausted`)                       |
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from genhub_notifier.domain.delivery import AttemptOutcome, DeliveryStatus, is_success
from genhub_notifier.domain.retry import RetrySchedule

RETRY_AFTER_MIN = timedelta(seconds=1)
RETRY_AFTER_MAX = timedelta(hours=1)
RETRY_AFTER_STATUSES = frozenset({429, 503})


class Reason(StrEnum):
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"  # next attempt per the schedule
    RETRY_AFTER = "retry_after"  # next attempt when the endpoint asked (later than the schedule)
    ENDPOINT_GONE = "endpoint_gone"  # 410: stop for good
    URL_REFUSED = "url_refused"  # SSRF guard: retrying cannot help
    RETRIES_EXHAUSTED = "retries_exhausted"


@dataclass(frozen=True)
class Outcome:
    """What an attempt produced. `status_code` None: no HTTP answer (timeout, connection
    error, DNS or storage trouble before the POST)."""

    status_code: int | None = None
    retry_after: str | None = None  # the raw `Retry-After` header, if any
    refused: bool = False  # the URL guard refused the target; nothing was sent


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    reason: Reason

    @property
    def attempt_outcome(self) -> AttemptOutcome:
        """The metric label of the attempt that led here."""
        if self.status is DeliveryStatus.DELIVERED:
            return AttemptOutcome.SUCCEEDED
        if self.reason in (Reason.ENDPOINT_GONE, Reason.URL_REFUSED):
            return AttemptOutcome.PERMANENT
        return AttemptOutcome.RETRYABLE


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as a delay from `now`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
    clamped to [1 s, 1 h]. None when absent or unparseable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" / obsolete forms: HTTP-dates are always GMT
            when = when.replace(tzinfo=UTC)
        delay = when - now
    return min(max(delay, RETRY_AFTER_MIN), RETRY_AFTER_MAX)


def decide(
    outcome: Outcome,
    attempt: int,
    schedule: RetrySchedule,
    now: datetime,
    rng: Callable[[], float],
) -> Decision:
    """Where a pending delivery goes after its `attempt`-th attempt (1-based)."""
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    code = outcome.status_code
    if code is not None and is_success(code):
        return Decision(DeliveryStatus.DELIVERED, None, Reason.DELIVERED)
    if outcome.refused:
        return Decision(DeliveryStatus.FAILED, None, Reason.URL_REFUSED)
    if code == 410:
        return Decision(DeliveryStatus.FAILED, None, Reason.ENDPOINT_GONE)
    delay = schedule.delay_after(attempt, rng)
    if delay is None:
        return Decision(DeliveryStatus.DEAD_LETTERED, None, Reason.RETRIES_EXHAUSTED)
    scheduled = now + timedelta(seconds=delay)
    if code in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(outcome.retry_after, now)
        if asked is not None and now + asked > scheduled:
            return Decision(DeliveryStatus.PENDING, now + asked, Reason.RETRY_AFTER)
    return Decision(DeliveryStatus.PENDING, scheduled, Reason.RETRY_SCHEDULED)


def error_text(outcome: Outcome, decision: Decision, send_error: str | None) -> str | None:
    """The attempt's (and delivery's) `error`: None when delivered, else what went wrong."""
    if decision.status is DeliveryStatus.DELIVERED:
        return None
    code = outcome.status_code
    if code is None:
        return send_error
    if decision.reason is Reason.ENDPOINT_GONE:
        return "endpoint_gone: endpoint answered 410"
    if 300 <= code < 400:
        return f"endpoint answered {code} (redirects are not followed)"
    if decision.reason is Reason.RETRY_AFTER:
        return f"endpoint answered {code}, Retry-After {outcome.retry_after}"
    return f"endpoint answered {code}"
