"""Which routes to try for a model, in what order, and what error a job ends with.

Route priority: a lower number is preferred (0 first). Under a budget squeeze the order
becomes cheapest first.
"""

from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genhub_contracts import ErrorCode, ErrorInfo


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

    No attempt at all: no_route. A terminal failure: its own code (it says why). Only
    retryable failures: the single provider's code, or all_providers_failed after several.
    """
    if not failures:
        return ErrorInfo(code=ErrorCode.NO_ROUTE, message="No enabled provider serves this model.")
    last = failures[-1]
    if not last.retryable or len(failures) == 1:
        return ErrorInfo(code=last.code, message=last.message)
    tried = ", ".join(f"{f.provider}: {f.code}" for f in failures)
    return ErrorInfo(
        code=ErrorCode.ALL_PROVIDERS_FAILED,
        message=f"All {len(failures)} provider attempts failed ({tried}).",
    )
