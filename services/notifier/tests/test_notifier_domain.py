"""Retry schedule, delivery state machine, delivery ids and the webhook body."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from genhub_contracts import JobStatus
from genhub_notifier.domain.body import OutputRef, WebhookData, build_body
from genhub_notifier.domain.delivery import (
    DeliveryStatus,
    EndpointRef,
    MessageStatus,
    WebhookEventType,
    delivery_id,
    event_message_id,
    is_success,
    job_message_id,
    message_readiness,
    targets,
)
from genhub_notifier.domain.endpoints import (
    DisableReason,
    disable_reason,
    normalise_event_types,
    signing_secrets,
)
from genhub_notifier.domain.paging import BadCursor, decode_cursor, encode_cursor
from genhub_notifier.domain.response import Outcome, decide
from genhub_notifier.domain.retry import RetrySchedule
from genhub_notifier.domain.signing import signature, signed_headers

NOW = datetime(2024, 11, 21, 12, 0, tzinfo=UTC)
SCHEDULE = RetrySchedule.parse("0,5,30,300,1800")


# --- retry schedule -----------------------------------------------------------------------------


def test_schedule_lists_the_wait_before_each_attempt() -> None:
    assert SCHEDULE.initial_delay_s == 0
    assert SCHEDULE.delays_s == (5, 30, 300, 1800)
    assert SCHEDULE.max_attempts == 5
    assert RetrySchedule.parse("0").max_attempts == 1
    local = RetrySchedule.parse("0,1,2,3,4")
    assert local.max_attempts == 5 and local.delays_s == (1, 2, 3, 4)


@pytest.mark.parametrize("bad", ["5,x", "-1", "5,,abc", ""])
def test_schedule_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        RetrySchedule.parse(bad)


def test_jitter_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        RetrySchedule.parse("0,5", jitter=1.0)


@pytest.mark.parametrize("attempts_made, base", [(1, 5), (2, 30), (3, 300), (4, 1800)])
def test_delay_stays_within_twenty_percent_jitter(attempts_made: int, base: float) -> None:
    assert SCHEDULE.delay_after(attempts_made, lambda: 0.0) == pytest.approx(base * 0.8)
    assert SCHEDULE.delay_after(attempts_made, lambda: 0.5) == pytest.approx(base)
    assert SCHEDULE.delay_after(attempts_made, lambda: 0.999999) == pytest.approx(
        base * 1.2, rel=1e-5
    )


def test_configured_jitter_is_used() -> None:
    narrow = RetrySchedule.parse("0,100", jitter=0.05)
    assert narrow.delay_after(1, lambda: 0.0) == pytest.approx(95)
    assert narrow.delay_after(1, lambda: 0.999999) == pytest.approx(105, rel=1e-5)
    assert RetrySchedule.parse("0,100", jitter=0).delay_after(1, lambda: 0.0) == 100


def test_schedule_is_exhausted_after_the_last_delay() -> None:
    assert SCHEDULE.delay_after(5, lambda: 0.5) is None


# --- messages waiting for facts -----------------------------------------------------------------

WAITS = {
    "subscription_wait": timedelta(minutes=15),
    "settlement_wait": timedelta(seconds=30),
    "recheck": timedelta(seconds=5),
}


def readiness(
    event_type: WebhookEventType, *, known: bool, settled: bool, after_s: float
) -> tuple[MessageStatus, datetime | None]:
    r = message_readiness(
        event_type=event_type,
        subscription_known=known,
        settled=settled,
        created_at=NOW,
        now=NOW + timedelta(seconds=after_s),
        **WAITS,  # type: ignore[arg-type]
    )
    return r.status, r.next_check_at


def test_job_message_waits_for_its_job_requested_then_gives_up() -> None:
    # Soon at first (its event is on the way), then backing off to the 5 s recheck.
    assert readiness(WebhookEventType.FAILED, known=False, settled=True, after_s=0) == (
        MessageStatus.WAITING,
        NOW + timedelta(milliseconds=100),
    )
    assert readiness(WebhookEventType.FAILED, known=False, settled=True, after_s=3) == (
        MessageStatus.WAITING,
        NOW + timedelta(seconds=6),
    )
    assert readiness(WebhookEventType.FAILED, known=False, settled=True, after_s=60) == (
        MessageStatus.WAITING,
        NOW + timedelta(seconds=65),
    )
    assert readiness(WebhookEventType.FAILED, known=False, settled=True, after_s=900)[0] is (
        MessageStatus.NO_ENDPOINT
    )


def test_settled_types_wait_for_tokens_settled_at_most_the_settlement_wait() -> None:
    for etype in (WebhookEventType.SUCCEEDED, WebhookEventType.FAILED, WebhookEventType.CANCELLED):
        assert readiness(etype, known=True, settled=False, after_s=1)[0] is MessageStatus.WAITING
        assert readiness(etype, known=True, settled=True, after_s=1)[0] is (
            MessageStatus.DISPATCHED
        )
        assert readiness(etype, known=True, settled=False, after_s=30)[0] is (
            MessageStatus.DISPATCHED
        )
    # The next check never overshoots the settlement deadline.
    assert readiness(WebhookEventType.SUCCEEDED, known=True, settled=False, after_s=28)[1] == (
        NOW + timedelta(seconds=30)
    )


def test_rejections_and_app_events_need_no_settlement() -> None:
    assert readiness(WebhookEventType.REJECTED, known=True, settled=False, after_s=0)[0] is (
        MessageStatus.DISPATCHED
    )
    for etype in (WebhookEventType.LOW_BALANCE, WebhookEventType.ENDPOINT_DISABLED):
        assert readiness(etype, known=False, settled=False, after_s=0)[0] is (
            MessageStatus.DISPATCHED
        )


def test_only_2xx_is_success() -> None:
    assert is_success(200) and is_success(204) and is_success(299)
    assert not any(is_success(c) for c in (199, 301, 400, 410, 500))


def test_terminal_states() -> None:
    assert {s for s in DeliveryStatus if s.is_terminal} == {
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
        DeliveryStatus.DEAD_LETTERED,
    }


# --- fan-out and filters ------------------------------------------------------------------------


def ep(url: str, types: tuple[str, ...] | None = None, enabled: bool = True) -> EndpointRef:
    return EndpointRef(uuid.uuid4(), url, types, enabled)


def test_targets_are_the_enabled_endpoints_whose_filter_accepts_the_type() -> None:
    everything = ep("https://a.example/all")
    only_failures = ep("https://b.example/f", ("job.failed",))
    disabled = ep("https://c.example/off", enabled=False)
    endpoints = [everything, only_failures, disabled]
    failed = targets(WebhookEventType.FAILED, None, endpoints)
    assert [t.url for t in failed] == ["https://a.example/all", "https://b.example/f"]
    assert [t.key for t in failed] == [str(everything.id), str(only_failures.id)]
    succeeded = targets(WebhookEventType.SUCCEEDED, None, endpoints)
    assert [t.endpoint_id for t in succeeded] == [everything.id]
    assert targets(WebhookEventType.FAILED, None, []) == []


def test_a_jobs_own_url_overrides_the_endpoints() -> None:
    [only] = targets(WebhookEventType.SUCCEEDED, "https://job.example/h", [ep("https://a/x")])
    assert only.url == "https://job.example/h" and only.endpoint_id is None
    assert only.key == "url:https://job.example/h"


def test_event_type_filters_are_validated() -> None:
    assert normalise_event_types(None) is None
    assert normalise_event_types(["job.failed", "job.failed", "endpoint.disabled"]) == (
        "endpoint.disabled",
        "job.failed",
    )
    with pytest.raises(ValueError, match=r"job\.exploded"):
        normalise_event_types(["job.exploded"])
    with pytest.raises(ValueError):
        normalise_event_types([])


# --- endpoint health ----------------------------------------------------------------------------

FIVE_DAYS = timedelta(days=5)


def test_410_disables_at_once_and_success_never_does() -> None:
    gone = decide(Outcome(410), 1, SCHEDULE, NOW, lambda: 0.5)
    assert disable_reason(gone, NOW, NOW, FIVE_DAYS) is DisableReason.ENDPOINT_GONE
    ok = decide(Outcome(200), 1, SCHEDULE, NOW, lambda: 0.5)
    assert disable_reason(ok, None, NOW, FIVE_DAYS) is None


def test_failing_for_five_days_disables() -> None:
    failed = decide(Outcome(500), 1, SCHEDULE, NOW, lambda: 0.5)
    started = NOW - FIVE_DAYS
    assert disable_reason(failed, started + timedelta(seconds=1), NOW, FIVE_DAYS) is None
    assert disable_reason(failed, started, NOW, FIVE_DAYS) is DisableReason.FAILING


# --- rotation signing ---------------------------------------------------------------------------

OLD = "whsec_" + "b2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xkb2xk"
NEW = "whsec_" + "bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3"


def test_rotated_out_secret_signs_only_during_its_grace_period() -> None:
    until = NOW + timedelta(hours=24)
    assert signing_secrets(NEW, OLD, until, NOW) == [NEW, OLD]
    assert signing_secrets(NEW, OLD, until, until) == [NEW]
    assert signing_secrets(NEW, None, None, NOW) == [NEW]


def test_two_secrets_give_two_space_separated_signatures() -> None:
    body = b'{"a":1}'
    headers = signed_headers([NEW, OLD], "msg_1", 1700000000, body)
    assert headers["webhook-signature"] == " ".join(
        [signature(NEW, "msg_1", 1700000000, body), signature(OLD, "msg_1", 1700000000, body)]
    )
    assert signed_headers(NEW, "msg_1", 1700000000, body)["webhook-signature"].count(" ") == 0
    with pytest.raises(ValueError):
        signed_headers([], "msg_1", 1, body)


# --- cursors ------------------------------------------------------------------------------------


def test_cursor_round_trips_and_rejects_garbage() -> None:
    assert decode_cursor(encode_cursor(NOW, "dlv_1")) == (NOW, "dlv_1")
    for bad in ("", "nope", encode_cursor(NOW, "x")[:-3]):
        with pytest.raises(BadCursor):
            decode_cursor(bad)


# --- ids and event types ------------------------------------------------------------------------


def test_ids_are_stable_and_distinct() -> None:
    job = uuid.uuid4()
    first = job_message_id(job, WebhookEventType.SUCCEEDED)
    assert first.startswith("msg_")
    assert first == job_message_id(job, WebhookEventType.SUCCEEDED)
    assert first != job_message_id(job, WebhookEventType.FAILED)
    assert first != job_message_id(uuid.uuid4(), WebhookEventType.SUCCEEDED)
    event = uuid.uuid4()
    assert event_message_id(event) == event_message_id(event) != event_message_id(uuid.uuid4())
    assert delivery_id(first, "a").startswith("dlv_")
    assert delivery_id(first, "a") == delivery_id(first, "a") != delivery_id(first, "b")


def test_event_type_for_terminal_statuses_only() -> None:
    assert WebhookEventType.for_status(JobStatus.SUCCEEDED) is WebhookEventType.SUCCEEDED
    assert WebhookEventType.for_status(JobStatus.CANCELLED) is WebhookEventType.CANCELLED
    assert WebhookEventType.REJECTED.job_status is JobStatus.REJECTED
    with pytest.raises(ValueError):
        WebhookEventType.for_status(JobStatus.RUNNING)
    with pytest.raises(ValueError):
        _ = WebhookEventType.LOW_BALANCE.job_status


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
            tokens_charged=5,
            tokens_refunded=0,
            requested_at="2024-11-21T11:59:00Z",
            completed_at="2024-11-21T12:00:00Z",
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
            "tokens_charged": 5,
            "tokens_refunded": 0,
            "error": None,
            "metadata": {"order": 7},
            "requested_at": "2024-11-21T11:59:00Z",
            "completed_at": "2024-11-21T12:00:00Z",
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


def test_app_event_bodies_carry_their_data_as_is() -> None:
    body = json.loads(
        build_body(
            WebhookEventType.LOW_BALANCE, NOW, {"user_id": "u", "balance": 3, "threshold": 10}
        )
    )
    assert body == {
        "type": "tokens.low_balance",
        "timestamp": "2024-11-21T12:00:00Z",
        "data": {"user_id": "u", "balance": 3, "threshold": 10},
    }
