"""The run state machine: which transitions exist and what a finished execution becomes.

A run is the orchestrator's record of one job: queued → running → generated | failed |
cancelled. `generated` is terminal here: storage takes the job to `succeeded` from there.
The SQL in the repository guards every transition with `WHERE status IN (...)`, using the
source sets defined here, so a job ends only once even with several replicas.
"""

from dataclasses import dataclass
from enum import StrEnum

from genhub_contracts import ErrorCode, ErrorInfo


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    GENERATED = "generated"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({RunStatus.GENERATED, RunStatus.FAILED, RunStatus.CANCELLED})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # queued → cancelled: a cancel before any worker picked the run up ends it at once.
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    # running → queued: a graceful shutdown hands the run back; running → running: a new
    # worker re-claims a run whose lease expired (its previous worker died).
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.QUEUED,
            RunStatus.GENERATED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        }
    ),
    RunStatus.GENERATED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class InvalidTransition(ValueError):
    pass


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    return target in TRANSITIONS[current]


def transition(current: RunStatus, target: RunStatus) -> RunStatus:
    if not can_transition(current, target):
        raise InvalidTransition(f"run cannot go from {current} to {target}")
    return target


def sources_of(target: RunStatus) -> frozenset[RunStatus]:
    """Statuses a run may be in for `target` to be reachable (the SQL guard of a transition)."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


CANCEL_AT_ONCE = frozenset({RunStatus.QUEUED})
"""A cancel ends a run immediately only while no worker holds it."""


class CancelAction(StrEnum):
    END_NOW = "end_now"  # queued: cancelled at once, JobCompleted(cancelled)
    FLAG = "flag"  # running: the worker discards its late result and ends it cancelled
    IGNORE = "ignore"  # already final: the job has ended, nothing changes
    REMEMBER = "remember"  # unknown yet (cancel overtook tokens.reserved): keep a tombstone


def cancel_action(status: RunStatus | None) -> CancelAction:
    if status is None:
        return CancelAction.REMEMBER
    if status in CANCEL_AT_ONCE:
        return CancelAction.END_NOW
    if status is RunStatus.RUNNING:
        return CancelAction.FLAG
    return CancelAction.IGNORE


def should_give_up(claims: int, max_claims: int) -> bool:
    """A run claimed more often than allowed keeps killing its workers: fail it for good."""
    return claims > max_claims


@dataclass(frozen=True)
class Outcome:
    """What a finished execution turns the run into, and the error the job ends with."""

    status: RunStatus
    error: ErrorInfo | None = None


CANCELLED_ERROR = ErrorInfo(code=ErrorCode.CANCELLED, message="The job was cancelled.")


def settle(*, cancel_requested: bool, generated: bool, error: ErrorInfo | None) -> Outcome:
    """Decide a running run's end once its execution returns.

    A cancel flag wins over any result: the late output is discarded.
    """
    if cancel_requested:
        return Outcome(RunStatus.CANCELLED, CANCELLED_ERROR)
    if generated:
        return Outcome(RunStatus.GENERATED)
    return Outcome(
        RunStatus.FAILED,
        error or ErrorInfo(code=ErrorCode.PROVIDER_ERROR, message="The provider failed."),
    )
