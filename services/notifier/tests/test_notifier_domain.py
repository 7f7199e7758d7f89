"""Retry schedule, delivery state machine, delivery ids and the webhook body."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from genhub_contracts import JobStatus
from genhub_notifier.domain.body import OutputRef, WebhookData, build_body
from genhub_notifier.domain.delivery import (
    DeliveryStatus,
    WebhookEventType,
    delivery_id,
    initial_status,
    is_success,
    resolve_waiting,
)
from genhub_notifier.domain.retry import RetrySchedule

NOW = datetime(2024, 11, 21, 12, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule.parse("5,30,300,1800")


# --- retry schedule -----------------------------------------------------------------------------


def test_schedule_parses_and_counts_attempts() -> None:
    assert SCHEDULE.delays_s == (5, 30, 300, 1800)
    assert SCHEDULE.max_attempts == 5
    assert RetrySchedule.parse("").max_attempts == 1


@pytest.mark.parametrize("bad", ["5,x", "-1", "5,,abc"])
def test_schedule_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        RetrySchedule.parse(bad)


@pytest.mark.parametrize("attempts_made, base", [(1, 5), (2, 30), (3, 300), (4, 1800)])
def test_delay_stays_within_twenty_percent_jitter(attempts_made: int, base: float) -> None:
    assert SCHEDULE.delay_after(attempts_made, lambda: 0.0) == pytest.approx(base * 0.8)
    assert SCHEDULE.delay_after(attempts_made, lambda: 0.5) == pytest.approx(base)
    assert SCHEDULE.delay_after(attempts_made, lambda: 0.999999) == pytest.approx(
        base * 1.2, rel=1e-5
    )


def test_schedule_is_exhausted_after_the_last_delay() -> None:
    assert SCHEDULE.delay_after(5, lambda: 0.5) is None


# --- state machine ------------------------------------------------------------------------------


def test_initial_status_depends_on_the_subscription() -> None:
    assert initial_status(False, None) is DeliveryStatus.WAITING_SUBSCRIPTION
    assert initial_status(True, "https://a.example/h") is DeliveryStatus.PENDING
    assert initial_status(True, None) is DeliveryStatus.NO_ENDPOINT


def test_waiting_delivery_resolves_when_the_subscription_appears() -> None:
    kw = {
        "created_at": NOW,
        "now": NOW + timedelta(seconds=3),
        "max_wait": timedelta(minutes=15),
        "recheck": timedelta(seconds=5),
    }
    assert (
        resolve_waiting(subscription_known=True, webhook_url="https://x.example", **kw).status
        is DeliveryStatus.PENDING
    )  # type: ignore[arg-type]
    assert (
        resolve_waiting(subscription_known=True, webhook_url=None, **kw).status
        is DeliveryStatus.NO_ENDPOINT
    )  # type: ignore[arg-type]
    still = resolve_waiting(subscription_known=False, webhook_url=None, **kw)  # type: ignore[arg-type]
    assert still.status is DeliveryStatus.WAITING_SUBSCRIPTION
    assert still.next_attempt_at == NOW + timedelta(seconds=8)


def test_waiting_is_bounded() -> None:
    t = resolve_waiting(
        subscription_known=False,
        webhook_url=None,
        created_at=NOW,
        now=NOW + timedelta(minutes=15),
        max_wait=timedelta(minutes=15),
        recheck=timedelta(seconds=5),
    )
    assert t.status is DeliveryStatus.NO_ENDPOINT


def test_only_2xx_is_success() -> None:
    assert is_success(200) and is_success(204) and is_success(299)
    assert not any(is_success(c) for c in (199, 301, 400, 410, 500))


def test_terminal_states() -> None:
    assert {s for s in DeliveryStatus if s.is_terminal} == {
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DEAD,
        DeliveryStatus.NO_ENDPOINT,
    }


# --- ids and event types ------------------------------------------------------------------------


def test_delivery_id_is_stable_per_job_and_type() -> None:
    job = uuid.uuid4()
    first = delivery_id(job, WebhookEventType.SUCCEEDED)
    assert first.startswith("msg_")
    assert first == delivery_id(job, WebhookEventType.SUCCEEDED)
    assert first != delivery_id(job, WebhookEventType.FAILED)
    assert first != delivery_id(uuid.uuid4(), WebhookEventType.SUCCEEDED)


def test_event_type_for_terminal_statuses_only() -> None:
    assert WebhookEventType.for_status(JobStatus.SUCCEEDED) is WebhookEventType.SUCCEEDED
    assert WebhookEventType.for_status(JobStatus.CANCELLED) is WebhookEventType.CANCELLED
    assert WebhookEventType.REJECTED.job_status is JobStatus.REJECTED
    with pytest.raises(ValueError):
        WebhookEventType.for_status(JobStatus.RUNNING)


# --- body ---------------------------------------------------------------------------------------


def test_body_has_the_documented_shape() -> None:
    body = build_body(
        WebhookEventType.SUCCEEDED,
        NOW,
        WebhookData(
            job_id="j1",
            user_id="u1",
            model="mock",
            outputs=[
                OutputRef(1, "https://s/1.png", "image/png", 64, 64),
                OutputRef(0, "https://s/0.png", "image/png", 32, 32),
            ],
            metadata={"order": 7},
        ),
    )
    assert json.loads(body) == {
        "type": "job.succeeded",
        "timestamp": "2024-11-21T12:00:00Z",
        "data": {
            "job_id": "j1",
            "user_id": "u1",
            "status": "succeeded",
            "model": "mock",
            "outputs": [
                {
                    "index": 0,
                    "url": "https://s/0.png",
                    "content_type": "image/png",
                    "width": 32,
                    "height": 32,
                },
                {
                    "index": 1,
                    "url": "https://s/1.png",
                    "content_type": "image/png",
                    "width": 64,
                    "height": 64,
                },
            ],
            "error": None,
            "metadata": {"order": 7},
        },
    }


def test_rejected_body_carries_the_reason_as_error_code() -> None:
    body = json.loads(
        build_body(
            WebhookEventType.REJECTED,
            NOW,
            WebhookData(
                job_id="j",
                user_id="u",
                model="mock",
                error={"code": "insufficient_tokens", "message": "need 10"},
            ),
        )
    )
    assert body["type"] == "job.rejected"
    assert body["data"]["status"] == "rejected"
    assert body["data"]["outputs"] == []
    assert body["data"]["error"] == {"code": "insufficient_tokens", "message": "need 10"}
