from uuid import uuid4

import pytest
from genhub_contracts import (
    EVENT_TYPES,
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    TokensRejected,
    parse_event,
    topics,
)
from genhub_contracts.enums import RejectReason
from genhub_contracts.events import (
    JobCompletedPayload,
    JobRequestedPayload,
    TokensRejectedPayload,
)
from pydantic import ValidationError


def _spec(**input_fields: object) -> JobSpec:
    return JobSpec(
        user_id="u-1", model="mock", input=GenerationInput(prompt="a cat", **input_fields)
    )


def test_every_event_type_has_a_topic_and_round_trips() -> None:
    app_id, job_id = uuid4(), uuid4()
    event = JobRequested.new(
        app_id=app_id, job_id=job_id, payload=JobRequestedPayload(spec=_spec())
    )
    decoded = parse_event(event.model_dump_json())
    assert decoded == event
    assert decoded.type == "job.requested"
    assert event.TOPIC == topics.JOB_REQUESTED
    assert {cls.TOPIC for cls in EVENT_TYPES.values()} <= set(topics.ALL_TOPICS)


def test_job_events_are_keyed_by_job_and_app_events_by_app() -> None:
    app_id, job_id = uuid4(), uuid4()
    rejected = TokensRejected.new(
        app_id=app_id,
        job_id=job_id,
        payload=TokensRejectedPayload(
            user_id="u", reason=RejectReason.INSUFFICIENT_TOKENS, message="no"
        ),
    )
    assert rejected.key == str(job_id).encode()


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        parse_event({"type": "job.exploded"})


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    event = JobCompleted.new(
        app_id=uuid4(),
        job_id=uuid4(),
        payload=JobCompletedPayload(user_id="u", status=JobStatus.FAILED, requested_outputs=1),
    )
    data = event.model_dump(mode="json") | {"added_in_v2": True}
    assert parse_event(data) == event


def test_provider_parameters_pass_through() -> None:
    spec = _spec(mock_fail=True, guidance=7.5)
    assert spec.input.provider_params == {"mock_fail": True, "guidance": 7.5}
    again = JobSpec.model_validate_json(spec.model_dump_json())
    assert again.input.provider_params == {"mock_fail": True, "guidance": 7.5}


@pytest.mark.parametrize(
    "fields",
    [{"num_outputs": 0}, {"num_outputs": 5}, {"aspect_ratio": "wide"}, {"width": 10}],
)
def test_generation_input_limits(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GenerationInput(prompt="x", **fields)  # type: ignore[arg-type]


def test_terminal_statuses() -> None:
    assert JobStatus.REJECTED.is_terminal
    assert not JobStatus.RUNNING.is_terminal
