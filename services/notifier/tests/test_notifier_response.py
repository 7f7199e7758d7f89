"""decide(): what each attempt result means for the delivery (Standard Webhooks / Svix rules)."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from genhub_notifier.domain.delivery import AttemptOutcome, DeliveryStatus
from genhub_notifier.domain.response import (
    Decision,
    Outcome,
    Reason,
    decide,
    error_text,
    parse_retry_after,
)
from genhub_notifier.domain.retry import RetrySchedule

NOW = datetime(2024, 11, 21, 12, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule.parse("0,5,30,300,1800")


def no_jitter() -> float:
    return 0.5


def run(outcome: Outcome, attempt: int = 1, schedule: RetrySchedule = SCHEDULE) -> Decision:
    return decide(outcome, attempt, schedule, NOW, no_jitter)


def http_date(at: datetime) -> str:
    return format_datetime(at, usegmt=True)


# --- 2xx, refusals, 410 -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_2xx_is_delivered_even_on_the_last_attempt(code: int) -> None:
    for attempt in (1, SCHEDULE.max_attempts):
        d = run(Outcome(code), attempt)
        assert d == Decision(DeliveryStatus.DELIVERED, None, Reason.DELIVERED)
        assert d.attempt_outcome is AttemptOutcome.SUCCEEDED
        assert error_text(Outcome(code), d, None) is None


def test_refused_url_is_dead_at_once() -> None:
    d = run(Outcome(refused=True))
    assert d == Decision(DeliveryStatus.FAILED, None, Reason.URL_REFUSED)
    assert d.attempt_outcome is AttemptOutcome.PERMANENT
    assert error_text(Outcome(refused=True), d, "private_address: no") == "private_address: no"


@pytest.mark.parametrize("attempt", [1, 3, 5])
def test_410_gone_stops_at_once_whatever_the_schedule(attempt: int) -> None:
    outcome = Outcome(410, retry_after="5")
    d = run(outcome, attempt)
    assert d == Decision(DeliveryStatus.FAILED, None, Reason.ENDPOINT_GONE)
    assert d.attempt_outcome is AttemptOutcome.PERMANENT
    assert error_text(outcome, d, None) == "endpoint_gone: endpoint answered 410"


# --- failures that follow the schedule ----------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_3xx_is_a_failure_never_followed(code: int) -> None:
    d = run(Outcome(code, retry_after="600"))  # Retry-After only counts on 429/503
    assert d == Decision(DeliveryStatus.PENDING, NOW + timedelta(seconds=5), Reason.RETRY_SCHEDULED)
    assert d.attempt_outcome is AttemptOutcome.RETRYABLE
    assert error_text(Outcome(code), d, None) == (
        f"endpoint answered {code} (redirects are not followed)"
    )


@pytest.mark.parametrize("code", [400, 401, 404, 409, 413, 500, 502, 504])
def test_other_4xx_5xx_follow_the_schedule_then_die(code: int) -> None:
    for attempt, base in enumerate((5, 30, 300, 1800), start=1):
        d = run(Outcome(code, retry_after="3600"), attempt)
        assert d.status is DeliveryStatus.PENDING and d.reason is Reason.RETRY_SCHEDULED
        assert d.next_attempt_at == NOW + timedelta(seconds=base)
    last = run(Outcome(code), SCHEDULE.max_attempts)
    assert last == Decision(DeliveryStatus.DEAD_LETTERED, None, Reason.RETRIES_EXHAUSTED)
    assert last.attempt_outcome is AttemptOutcome.RETRYABLE
    assert error_text(Outcome(code), last, None) == f"endpoint answered {code}"


@pytest.mark.parametrize("error", ["timeout", "ConnectError: refused", "storage unavailable"])
def test_no_response_follows_the_schedule_then_dies(error: str) -> None:
    d = run(Outcome(), 2)
    assert d == Decision(
        DeliveryStatus.PENDING, NOW + timedelta(seconds=30), Reason.RETRY_SCHEDULED
    )
    assert error_text(Outcome(), d, error) == error
    assert run(Outcome(), 5).status is DeliveryStatus.DEAD_LETTERED


def test_jitter_is_applied_to_the_schedule() -> None:
    d = decide(Outcome(500), 1, SCHEDULE, NOW, lambda: 0.0)
    assert d.next_attempt_at == NOW + timedelta(seconds=4)  # 5 s - 20 %


def test_a_single_attempt_schedule_dies_on_the_first_failure() -> None:
    assert run(Outcome(500), 1, RetrySchedule.parse("0")).status is DeliveryStatus.DEAD_LETTERED


def test_attempts_are_1_based() -> None:
    with pytest.raises(ValueError):
        run(Outcome(500), 0)


# --- 429 / 503 and Retry-After ------------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_seconds_later_than_the_schedule_wins(code: int) -> None:
    outcome = Outcome(code, retry_after="120")
    d = run(outcome)
    assert d == Decision(DeliveryStatus.PENDING, NOW + timedelta(seconds=120), Reason.RETRY_AFTER)
    assert d.attempt_outcome is AttemptOutcome.RETRYABLE
    assert error_text(outcome, d, None) == f"endpoint answered {code}, Retry-After 120"


@pytest.mark.parametrize("code", [429, 503])
def test_retry_after_http_date_later_than_the_schedule_wins(code: int) -> None:
    d = run(Outcome(code, retry_after=http_date(NOW + timedelta(minutes=10))))
    assert d == Decision(DeliveryStatus.PENDING, NOW + timedelta(minutes=10), Reason.RETRY_AFTER)


def test_retry_after_earlier_than_the_schedule_keeps_the_schedule() -> None:
    assert run(Outcome(429, retry_after="2")).next_attempt_at == NOW + timedelta(seconds=5)
    d = run(Outcome(503, retry_after=http_date(NOW + timedelta(seconds=60))), 3)  # schedule 300
    assert d == Decision(
        DeliveryStatus.PENDING, NOW + timedelta(seconds=300), Reason.RETRY_SCHEDULED
    )


def test_retry_after_is_clamped_to_one_hour() -> None:
    d = run(Outcome(429, retry_after="86400"))
    assert d.next_attempt_at == NOW + timedelta(hours=1) and d.reason is Reason.RETRY_AFTER
    d = run(Outcome(503, retry_after=http_date(NOW + timedelta(days=3))))
    assert d.next_attempt_at == NOW + timedelta(hours=1)


def test_retry_after_cannot_beat_the_schedule_on_the_last_attempt() -> None:
    d = run(Outcome(429, retry_after="60"), SCHEDULE.max_attempts)
    assert d == Decision(DeliveryStatus.DEAD_LETTERED, None, Reason.RETRIES_EXHAUSTED)


@pytest.mark.parametrize("junk", [None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2024 00:00:00 GMT"])
def test_bad_or_missing_retry_after_keeps_the_schedule(junk: str | None) -> None:
    d = run(Outcome(429, retry_after=junk))
    assert d == Decision(DeliveryStatus.PENDING, NOW + timedelta(seconds=5), Reason.RETRY_SCHEDULED)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0", timedelta(seconds=1)),  # clamped up
        ("1", timedelta(seconds=1)),
        (" 90 ", timedelta(seconds=90)),
        ("3600", timedelta(hours=1)),
        ("3601", timedelta(hours=1)),  # clamped down
        ("Thu, 21 Nov 2024 12:02:00 GMT", timedelta(minutes=2)),
        ("Thu, 21 Nov 2024 11:00:00 GMT", timedelta(seconds=1)),  # in the past: clamped up
        ("Fri, 22 Nov 2024 12:00:00 GMT", timedelta(hours=1)),
        ("Thursday, 21-Nov-24 12:02:00 GMT", timedelta(minutes=2)),  # obsolete RFC 850 form
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, NOW) == expected
