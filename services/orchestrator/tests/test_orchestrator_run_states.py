import pytest
from genhub_contracts import ErrorCode, ErrorInfo
from genhub_orchestrator.domain.runs import (
    FINAL_STATUSES,
    CancelAction,
    InvalidTransition,
    RunStatus,
    can_transition,
    cancel_action,
    settle,
    should_give_up,
    sources_of,
    transition,
)


def test_happy_path() -> None:
    status = RunStatus.QUEUED
    status = transition(status, RunStatus.RUNNING)
    status = transition(status, RunStatus.GENERATED)
    assert status.is_final


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
@pytest.mark.parametrize("target", list(RunStatus))
def test_final_statuses_never_move(final: RunStatus, target: RunStatus) -> None:
    assert not can_transition(final, target)
    with pytest.raises(InvalidTransition):
        transition(final, target)


def test_queued_cannot_skip_running() -> None:
    assert not can_transition(RunStatus.QUEUED, RunStatus.GENERATED)
    assert not can_transition(RunStatus.QUEUED, RunStatus.FAILED)


def test_sql_guards_follow_the_table() -> None:
    assert sources_of(RunStatus.CANCELLED) == {RunStatus.QUEUED, RunStatus.RUNNING}
    assert sources_of(RunStatus.GENERATED) == {RunStatus.RUNNING}
    assert sources_of(RunStatus.FAILED) == {RunStatus.RUNNING}
    assert sources_of(RunStatus.RUNNING) == {RunStatus.QUEUED, RunStatus.RUNNING}


def test_cancel_actions() -> None:
    assert cancel_action(None) is CancelAction.REMEMBER
    assert cancel_action(RunStatus.QUEUED) is CancelAction.END_NOW
    assert cancel_action(RunStatus.RUNNING) is CancelAction.FLAG
    for final in FINAL_STATUSES:
        assert cancel_action(final) is CancelAction.IGNORE


def test_cancel_flag_discards_a_late_result() -> None:
    outcome = settle(cancel_requested=True, generated=True, error=None)
    assert outcome.status is RunStatus.CANCELLED
    assert outcome.error is not None and outcome.error.code is ErrorCode.CANCELLED


def test_settle_generated_and_failed() -> None:
    assert settle(cancel_requested=False, generated=True, error=None).status is RunStatus.GENERATED
    error = ErrorInfo(code=ErrorCode.PROVIDER_TIMEOUT, message="slow")
    failed = settle(cancel_requested=False, generated=False, error=error)
    assert failed.status is RunStatus.FAILED and failed.error == error


def test_give_up_after_max_claims() -> None:
    assert not should_give_up(3, 3)
    assert should_give_up(4, 3)
