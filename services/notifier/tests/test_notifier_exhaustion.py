"""Dead letters the app hears about: when an exhausted delivery is announced, to whom, and
what the `delivery.exhausted` body says (no I/O)."""

import json
import uuid
from datetime import UTC, datetime

from genhub_notifier.domain.body import build_body
from genhub_notifier.domain.delivery import (
    DeliveryStatus,
    EndpointRef,
    WebhookEventType,
    exhausted_message_id,
    targets,
)
from genhub_notifier.domain.endpoints import normalise_event_types
from genhub_notifier.domain.exhaustion import Exhaustion
from genhub_notifier.domain.response import Decision, Outcome, Reason, decide
from genhub_notifier.domain.retry import RetrySchedule

NOW = datetime(2024, 11, 21, 12, 0, tzinfo=UTC)


def exhaustion(
    event_type: WebhookEventType = WebhookEventType.FAILED, **changes: object
) -> Exhaustion:
    values: dict[str, object] = {
        "delivery_id": "dlv_1",
        "webhook_id": "msg_1",
        "app_id": uuid.uuid4(),
        "endpoint_id": uuid.uuid4(),
        "url": "https://hooks.example.com/a",
        "event_type": event_type,
        "job_id": uuid.uuid4(),
        "attempts": 5,
        "last_error": "retries_exhausted: endpoint answered 500",
        "at": NOW,
    }
    values.update(changes)
    return Exhaustion(**values)  # type: ignore[arg-type]


def test_the_last_failed_attempt_dead_letters_the_delivery() -> None:
    schedule = RetrySchedule.parse("0,1,2")
    assert decide(Outcome(500), 2, schedule, NOW, lambda: 0.5).status is DeliveryStatus.PENDING
    last = decide(Outcome(500), 3, schedule, NOW, lambda: 0.5)
    assert last == Decision(DeliveryStatus.DEAD_LETTERED, None, Reason.RETRIES_EXHAUSTED)
    # Stopping for a permanent reason is `failed`, not a dead letter of the schedule.
    assert decide(Outcome(410), 1, schedule, NOW, lambda: 0.5).status is DeliveryStatus.FAILED
    assert decide(Outcome(refused=True), 1, schedule, NOW, lambda: 0.5).status is (
        DeliveryStatus.FAILED
    )


def test_every_type_is_announced_except_an_exhaustion_notice_itself() -> None:
    for event_type in WebhookEventType:
        expected = event_type is not WebhookEventType.DELIVERY_EXHAUSTED
        assert exhaustion(event_type).announced is expected, event_type


def test_exhaustion_is_a_type_endpoints_can_subscribe_to() -> None:
    assert normalise_event_types(["delivery.exhausted"]) == ("delivery.exhausted",)
    assert not WebhookEventType.DELIVERY_EXHAUSTED.is_job_event
    assert not WebhookEventType.DELIVERY_EXHAUSTED.needs_settlement


def test_the_failed_endpoint_is_left_out_of_the_announcement() -> None:
    failed = EndpointRef(uuid.uuid4(), "https://a.example/dead", None, True)
    watcher = EndpointRef(uuid.uuid4(), "https://b.example/w", ("delivery.exhausted",), True)
    jobs_only = EndpointRef(uuid.uuid4(), "https://c.example/j", ("job.failed",), True)
    off = EndpointRef(uuid.uuid4(), "https://d.example/off", None, False)
    chosen = targets(
        WebhookEventType.DELIVERY_EXHAUSTED, None, [failed, watcher, jobs_only, off], failed.id
    )
    assert [t.endpoint_id for t in chosen] == [watcher.id]
    # Without an exclusion (a job's own URL failed) every subscribed endpoint hears it.
    everyone = targets(WebhookEventType.DELIVERY_EXHAUSTED, None, [failed, watcher, off])
    assert [t.endpoint_id for t in everyone] == [failed.id, watcher.id]


def test_one_message_per_exhaustion() -> None:
    first = exhaustion(delivery_id="dlv_x", attempts=5)
    assert first.message_id == exhausted_message_id("dlv_x", 5)
    assert first.message_id.startswith("msg_")
    assert first.message_id == exhaustion(delivery_id="dlv_x", attempts=5).message_id
    # The same delivery exhausted again after a replay: a new message.
    assert first.message_id != exhaustion(delivery_id="dlv_x", attempts=10).message_id
    assert first.message_id != exhaustion(delivery_id="dlv_y", attempts=5).message_id


def test_the_body_names_the_failed_delivery() -> None:
    app, endpoint, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    e = exhaustion(app_id=app, endpoint_id=endpoint, job_id=job)
    body = json.loads(build_body(WebhookEventType.DELIVERY_EXHAUSTED, e.at, e.data()))
    assert body == {
        "type": "delivery.exhausted",
        "timestamp": "2024-11-21T12:00:00Z",
        "data": {
            "delivery_id": "dlv_1",
            "webhook_id": "msg_1",
            "endpoint_id": str(endpoint),
            "url": "https://hooks.example.com/a",
            "event_type": "job.failed",
            "job_id": str(job),
            "attempts": 5,
            "last_error": "retries_exhausted: endpoint answered 500",
            "exhausted_at": "2024-11-21T12:00:00Z",
        },
    }
    own_url = exhaustion(WebhookEventType.LOW_BALANCE, endpoint_id=None, job_id=None).data()
    assert own_url["endpoint_id"] is None and own_url["job_id"] is None
