"""The job read-model's transition rules: how each saga event changes what an app sees.

Events arrive from several topics, each ordered only within itself, so the projection must
converge whatever the interleaving: status only moves forward (queued < reserved < running <
terminal), a terminal status is never overwritten, and facts that do not depend on status
(tokens held, tokens settled, step timestamps) are recorded whenever they arrive.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from genhub_contracts import JobStatus

_RANK = {JobStatus.QUEUED: 0, JobStatus.RESERVED: 1, JobStatus.RUNNING: 2}
_TERMINAL_RANK = 3


def rank(status: JobStatus) -> int:
    return _TERMINAL_RANK if status.is_terminal else _RANK[status]


def advance(current: JobStatus, incoming: JobStatus) -> JobStatus:
    """The status after seeing `incoming`: forward moves only; terminal is final."""
    if current.is_terminal:
        return current
    return incoming if rank(incoming) > rank(current) else current


@dataclass(frozen=True)
class JobProgress:
    """The part of a job's read-model row that events change."""

    status: JobStatus = JobStatus.QUEUED
    tokens_reserved: int | None = None
    tokens_charged: int | None = None
    tokens_refunded: int | None = None
    provider: str | None = None
    attempts: int = 0
    error_code: str | None = None
    error_message: str | None = None
    error_details: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    reserved_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    settled_at: datetime | None = None


def on_reserved(p: JobProgress, *, amount: int, at: datetime) -> JobProgress:
    return replace(
        p,
        status=advance(p.status, JobStatus.RESERVED),
        tokens_reserved=amount,
        reserved_at=p.reserved_at or at,
    )


def on_rejected(
    p: JobProgress,
    *,
    reason: str,
    message: str,
    balance: int | None,
    required: int | None,
    at: datetime,
) -> JobProgress:
    if p.status.is_terminal:
        return p
    details = {k: v for k, v in (("balance", balance), ("required", required)) if v is not None}
    return replace(
        p,
        status=JobStatus.REJECTED,
        error_code=reason,
        error_message=message,
        error_details=details or None,
        completed_at=at,
    )


def on_started(p: JobProgress, *, provider: str, attempt: int, at: datetime) -> JobProgress:
    # A late JobStarted (after JobCompleted) still tells us the job did start, but the
    # completion's provider and status are the final word.
    return replace(
        p,
        status=advance(p.status, JobStatus.RUNNING),
        provider=p.provider if p.status.is_terminal else provider,
        attempts=max(p.attempts, attempt),
        started_at=p.started_at or at,
    )


def on_completed(
    p: JobProgress,
    *,
    status: JobStatus,
    outputs: list[dict[str, Any]],
    error_code: str | None,
    error_message: str | None,
    provider: str | None,
    attempts: int,
    at: datetime,
) -> JobProgress:
    if p.status.is_terminal:
        return p
    return replace(
        p,
        status=status,
        outputs=sorted(outputs, key=lambda o: int(o.get("index", 0))),
        error_code=error_code,
        error_message=error_message,
        error_details=None,
        provider=provider or p.provider,
        attempts=max(p.attempts, attempts),
        completed_at=at,
    )


def on_settled(p: JobProgress, *, charged: int, refunded: int, at: datetime) -> JobProgress:
    # Settlement is a billing fact independent of status; it may precede JobCompleted.
    return replace(p, tokens_charged=charged, tokens_refunded=refunded, settled_at=at)
