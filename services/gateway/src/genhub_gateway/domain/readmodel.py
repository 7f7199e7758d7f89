"""The job read-model's transition rules: how each saga event changes what an app sees.

Events arrive from several topics, each ordered only within itself, so the projection must
converge whatever the interleaving: status only moves forward (queued < reserved < running <
terminal), a terminal status is never overwritten, and facts that do not depend on status
(tokens held, tokens settled, step timestamps) are recorded whenever they arrive.

The `on_*` functions apply one event to a known row. The projection writes a batch without
reading rows first: `fold` turns one job's events (in delivery order) into a `JobDelta` that
does not depend on the row, and `apply_delta` is the rule that combines a delta with the
row; the database adapter runs that same rule in SQL. `apply_delta(fold(events), p)` equals
applying the events one by one to `p`, whatever `p` is (tests check every order).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from genhub_contracts import JobStatus

# Statuses a job can still leave, in the order it moves through them; rank = position.
LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RESERVED, JobStatus.RUNNING)
_RANK = {status: position for position, status in enumerate(LIVE_STATUSES)}
TERMINAL_RANK = len(LIVE_STATUSES)


def rank(status: JobStatus) -> int:
    return TERMINAL_RANK if status.is_terminal else _RANK[status]


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
    return replace(
        p,
        status=JobStatus.REJECTED,
        error_code=reason,
        error_message=message,
        error_details=rejection_details(balance, required),
        completed_at=at,
    )


def rejection_details(balance: int | None, required: int | None) -> dict[str, Any] | None:
    details = {k: v for k, v in (("balance", balance), ("required", required)) if v is not None}
    return details or None


def in_index_order(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(outputs, key=lambda o: int(o.get("index", 0)))


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
        outputs=in_index_order(outputs),
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


# --- events as data, and a batch of one job's events folded into one write ---------------------


@dataclass(frozen=True)
class Reserved:
    amount: int
    at: datetime

    def apply(self, p: JobProgress) -> JobProgress:
        return on_reserved(p, amount=self.amount, at=self.at)


@dataclass(frozen=True)
class Rejected:
    reason: str
    message: str
    balance: int | None
    required: int | None
    at: datetime

    def apply(self, p: JobProgress) -> JobProgress:
        return on_rejected(
            p,
            reason=self.reason,
            message=self.message,
            balance=self.balance,
            required=self.required,
            at=self.at,
        )


@dataclass(frozen=True)
class Started:
    provider: str
    attempt: int
    at: datetime

    def apply(self, p: JobProgress) -> JobProgress:
        return on_started(p, provider=self.provider, attempt=self.attempt, at=self.at)


@dataclass(frozen=True)
class Completed:
    status: JobStatus
    outputs: list[dict[str, Any]]
    error_code: str | None
    error_message: str | None
    provider: str | None
    attempts: int
    at: datetime

    def apply(self, p: JobProgress) -> JobProgress:
        return on_completed(
            p,
            status=self.status,
            outputs=self.outputs,
            error_code=self.error_code,
            error_message=self.error_message,
            provider=self.provider,
            attempts=self.attempts,
            at=self.at,
        )


@dataclass(frozen=True)
class Settled:
    charged: int
    refunded: int
    at: datetime

    def apply(self, p: JobProgress) -> JobProgress:
        return on_settled(p, charged=self.charged, refunded=self.refunded, at=self.at)


Step = Reserved | Rejected | Started | Completed | Settled


@dataclass(frozen=True)
class Ending:
    """What a job's first terminal event writes, if the row has not ended yet. `outputs` and
    `provider` None keep the row's (a rejection has no outputs; a completion without a
    provider keeps the one the job started with)."""

    status: JobStatus
    error_code: str | None
    error_message: str | None
    error_details: dict[str, Any] | None
    outputs: list[dict[str, Any]] | None
    provider: str | None
    attempts: int
    at: datetime


@dataclass(frozen=True)
class JobDelta:
    """One job's events folded, independent of the row they will be applied to.

    `advance_to`: the furthest live status asked for; `ending`: the first terminal event;
    `provider`: the last start's provider before any ending; `attempts`: the highest start
    attempt; `tokens_reserved`, `settlement`: the last of each; `reserved_at`, `started_at`:
    the first of each."""

    advance_to: JobStatus | None = None
    ending: Ending | None = None
    tokens_reserved: int | None = None
    reserved_at: datetime | None = None
    provider: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    settlement: Settled | None = None


def _furthest(current: JobStatus | None, incoming: JobStatus) -> JobStatus:
    return incoming if current is None or rank(incoming) > rank(current) else current


def fold(steps: Iterable[Step]) -> JobDelta:
    """One job's events, in delivery order, as one delta."""
    d = JobDelta()
    for step in steps:
        match step:
            case Reserved(amount=amount, at=at):
                d = replace(
                    d,
                    advance_to=_furthest(d.advance_to, JobStatus.RESERVED),
                    tokens_reserved=amount,
                    reserved_at=d.reserved_at or at,
                )
            case Started(provider=provider, attempt=attempt, at=at):
                d = replace(
                    d,
                    advance_to=_furthest(d.advance_to, JobStatus.RUNNING),
                    provider=d.provider if d.ending else provider,
                    attempts=max(d.attempts, attempt),
                    started_at=d.started_at or at,
                )
            case Rejected() if d.ending is None:
                d = replace(
                    d,
                    ending=Ending(
                        status=JobStatus.REJECTED,
                        error_code=step.reason,
                        error_message=step.message,
                        error_details=rejection_details(step.balance, step.required),
                        outputs=None,
                        provider=None,
                        attempts=0,
                        at=step.at,
                    ),
                )
            case Completed() if d.ending is None:
                d = replace(
                    d,
                    ending=Ending(
                        status=step.status,
                        error_code=step.error_code,
                        error_message=step.error_message,
                        error_details=None,
                        outputs=in_index_order(step.outputs),
                        provider=step.provider or None,
                        attempts=step.attempts,
                        at=step.at,
                    ),
                )
            case Settled():
                d = replace(d, settlement=step)
    return d


def apply_delta(d: JobDelta, p: JobProgress) -> JobProgress:
    """The row after a delta. The projection's SQL (adapters/projection.py) is this rule."""
    live = not p.status.is_terminal
    ending = d.ending if live else None
    if ending is not None:
        status = ending.status
    elif live and d.advance_to is not None:
        status = advance(p.status, d.advance_to)
    else:
        status = p.status
    settled = d.settlement
    return JobProgress(
        status=status,
        tokens_reserved=d.tokens_reserved if d.tokens_reserved is not None else p.tokens_reserved,
        tokens_charged=settled.charged if settled else p.tokens_charged,
        tokens_refunded=settled.refunded if settled else p.tokens_refunded,
        provider=_first_set(ending.provider if ending else None, d.provider, p.provider)
        if live
        else p.provider,
        attempts=max(p.attempts, d.attempts, ending.attempts if ending else 0),
        error_code=ending.error_code if ending else p.error_code,
        error_message=ending.error_message if ending else p.error_message,
        error_details=ending.error_details if ending else p.error_details,
        outputs=ending.outputs if ending and ending.outputs is not None else p.outputs,
        reserved_at=p.reserved_at or d.reserved_at,
        started_at=p.started_at or d.started_at,
        completed_at=ending.at if ending else p.completed_at,
        settled_at=settled.at if settled else p.settled_at,
    )


def _first_set(*values: str | None) -> str | None:
    """SQL's COALESCE: the first value that is not None."""
    return next((v for v in values if v is not None), None)
