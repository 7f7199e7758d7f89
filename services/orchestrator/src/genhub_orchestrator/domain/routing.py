"""Which routes to try for a model, in what order, and what error a job ends with.

Route priority: a lower number is preferred (0 first): that is the quality order. A free-tier
job, and every job of an app whose budget passed its soft cap, goes cheapest first instead.
"""

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from genhub_contracts import ErrorCode, ErrorInfo, Plan


@dataclass(frozen=True)
class RouteOption:
    provider: str
    provider_model_id: str
    priority: int
    cost_usd: Decimal
    settings: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    provider_enabled: bool = True


def order_routes(
    routes: Iterable[RouteOption],
    *,
    cheapest_first: bool = False,
    available: Container[str] | None = None,
) -> list[RouteOption]:
    """Usable routes (route and provider enabled, adapter available), best first.

    Ties break on the provider name so the order is stable across replicas.
    """
    usable = [
        r
        for r in routes
        if r.enabled and r.provider_enabled and (available is None or r.provider in available)
    ]
    if cheapest_first:
        return sorted(usable, key=lambda r: (r.cost_usd, r.priority, r.provider))
    return sorted(usable, key=lambda r: (r.priority, r.cost_usd, r.provider))


def cheapest_first(plan: Plan, *, budget_squeezed: bool) -> bool:
    """Tier-aware order: free users and apps over their soft budget cap go cheapest first."""
    return plan is Plan.FREE or budget_squeezed


def squeeze_until(period: str, now: datetime) -> datetime:
    """When a budget period ends: `YYYY-MM` → the next month's first instant (UTC),
    `YYYY-MM-DD` → the next day; anything else → 31 days from `now`."""
    try:
        if len(period) == 7:
            start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
            return (start + timedelta(days=32)).replace(day=1)
        if len(period) == 10:
            return datetime.strptime(period, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1)
    except ValueError:
        pass
    return now + timedelta(days=31)


@dataclass(frozen=True)
class AttemptFailure:
    provider: str
    code: ErrorCode
    message: str
    retryable: bool


def should_try_next(failure: AttemptFailure) -> bool:
    return failure.retryable


def final_error(failures: Sequence[AttemptFailure]) -> ErrorInfo:
    """The error a job ends with after its attempts failed.

    - no attempt at all: `no_route`;
    - the last failure is terminal (content policy, bad input, ...): its own code, it says why;
    - only retryable failures, all of them timeouts: `provider_timeout`;
    - only retryable failures otherwise: `all_providers_failed`, listing every attempt.
    """
    if not failures:
        return ErrorInfo(code=ErrorCode.NO_ROUTE, message="No enabled provider serves this model.")
    last = failures[-1]
    if not last.retryable:
        return ErrorInfo(code=last.code, message=last.message)
    tried = "; ".join(f"{f.provider}: {f.code} ({f.message})" for f in failures)
    if all(f.code is ErrorCode.PROVIDER_TIMEOUT for f in failures):
        return ErrorInfo(
            code=ErrorCode.PROVIDER_TIMEOUT,
            message=f"The provider did not answer in time ({len(failures)} attempts: {tried}).",
        )
    return ErrorInfo(
        code=ErrorCode.ALL_PROVIDERS_FAILED,
        message=f"All {len(failures)} provider attempts failed: {tried}.",
    )
