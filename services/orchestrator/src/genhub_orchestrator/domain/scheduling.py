"""Which queued runs start now: priority order, per-app limits by plan, no head-of-line blocking.

The claim query hands over candidates already in priority order (lower number first, then
oldest) together with how many runs each app has running. `pick` walks them once: a run
whose app is at its plan's limit is skipped, not waited for, so one busy tenant never holds
back another tenant's jobs. Runs whose lease expired (their worker died) are taken over first:
they are already counted as running for their app.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from uuid import UUID

from genhub_contracts import Plan

DEFAULT_PLAN_LIMITS: dict[str, int] = {
    Plan.FREE.value: 1,
    Plan.BASIC.value: 1,
    Plan.PRO.value: 3,
    Plan.ENTERPRISE.value: 10,
}
MAX_PLAN_LIMIT = 1000


class InvalidPlanLimits(ValueError):
    pass


def validate_plan_limits(limits: Mapping[str, int]) -> dict[str, int]:
    """Known plans only, each within 1..MAX_PLAN_LIMIT."""
    known = {p.value for p in Plan}
    clean: dict[str, int] = {}
    for plan, limit in limits.items():
        if plan not in known:
            raise InvalidPlanLimits(f"unknown plan {plan!r} (known: {', '.join(sorted(known))})")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InvalidPlanLimits(f"the limit of {plan!r} must be an integer")
        if not 1 <= limit <= MAX_PLAN_LIMIT:
            raise InvalidPlanLimits(f"the limit of {plan!r} must be within 1..{MAX_PLAN_LIMIT}")
        clean[plan] = limit
    return clean


@dataclass(frozen=True)
class Candidate:
    job_id: UUID
    app_id: UUID
    plan: str
    takeover: bool = False  # a running run whose lease expired: its slot is already counted


def limit_for(plan: str, limits: Mapping[str, int]) -> int:
    return limits.get(plan, DEFAULT_PLAN_LIMITS.get(plan, 1))


def pick(
    candidates: Iterable[Candidate],
    *,
    running: Mapping[UUID, int],
    limits: Mapping[str, int],
    slots: int,
) -> list[Candidate]:
    """Up to `slots` candidates that may start without passing their app's limit."""
    busy = dict(running)
    chosen: list[Candidate] = []
    for candidate in candidates:
        if len(chosen) >= slots:
            break
        if candidate.takeover:
            chosen.append(candidate)
            continue
        if busy.get(candidate.app_id, 0) >= limit_for(candidate.plan, limits):
            continue  # this app waits; the next app's run is looked at
        busy[candidate.app_id] = busy.get(candidate.app_id, 0) + 1
        chosen.append(candidate)
    return chosen
