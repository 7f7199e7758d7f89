from decimal import Decimal

from genhub_contracts import ErrorCode
from genhub_orchestrator.domain.routing import (
    AttemptFailure,
    RouteOption,
    final_error,
    order_routes,
    should_try_next,
)
from genhub_orchestrator.domain.staging import staging_key


def route(provider: str, priority: int, cost: str, **kw: bool) -> RouteOption:
    return RouteOption(provider, f"{provider}-model", priority, Decimal(cost), **kw)


ROUTES = [
    route("replicate", 50, "0.003"),
    route("openai", 100, "0.040"),
    route("fal", 100, "0.010"),
    route("stability", 10, "0.001", enabled=False),
    route("gemini", 90, "0.020", provider_enabled=False),
]


def test_lower_priority_number_first_then_cost_then_name() -> None:
    assert [r.provider for r in order_routes(ROUTES)] == ["replicate", "fal", "openai"]


def test_cheapest_first_under_budget_pressure() -> None:
    ordered = order_routes(ROUTES, cheapest_first=True)
    assert [r.provider for r in ordered] == ["replicate", "fal", "openai"]


def test_only_routes_with_an_adapter() -> None:
    assert [r.provider for r in order_routes(ROUTES, available={"openai"})] == ["openai"]
    assert order_routes(ROUTES, available=set()) == []


def failure(provider: str, code: ErrorCode, retryable: bool = True) -> AttemptFailure:
    return AttemptFailure(provider, code, f"{provider} said no", retryable)


def test_final_error_no_route() -> None:
    assert final_error([]).code is ErrorCode.NO_ROUTE


def test_final_error_only_timeouts_is_provider_timeout() -> None:
    timeouts = [
        failure("mock", ErrorCode.PROVIDER_TIMEOUT),
        failure("fal", ErrorCode.PROVIDER_TIMEOUT),
    ]
    error = final_error(timeouts)
    assert error.code is ErrorCode.PROVIDER_TIMEOUT and "2 attempts" in error.message


def test_final_error_retryable_failures_are_all_providers_failed_with_attempts() -> None:
    error = final_error([failure("mock", ErrorCode.PROVIDER_ERROR)])
    assert error.code is ErrorCode.ALL_PROVIDERS_FAILED
    assert "mock: provider_error (mock said no)" in error.message


def test_final_error_several_retryable_failures() -> None:
    error = final_error(
        [failure("fal", ErrorCode.PROVIDER_TIMEOUT), failure("openai", ErrorCode.PROVIDER_ERROR)]
    )
    assert error.code is ErrorCode.ALL_PROVIDERS_FAILED
    assert "fal" in error.message and "openai" in error.message


def test_terminal_failure_stops_and_names_itself() -> None:
    terminal = failure("openai", ErrorCode.CONTENT_REJECTED, retryable=False)
    assert not should_try_next(terminal)
    assert should_try_next(failure("fal", ErrorCode.PROVIDER_ERROR))
    assert final_error([failure("fal", ErrorCode.PROVIDER_ERROR), terminal]).code is (
        ErrorCode.CONTENT_REJECTED
    )


def test_tier_aware_order() -> None:
    from genhub_contracts import Plan
    from genhub_orchestrator.domain.routing import cheapest_first

    assert cheapest_first(Plan.FREE, budget_squeezed=False)
    assert not cheapest_first(Plan.PRO, budget_squeezed=False)
    assert cheapest_first(Plan.ENTERPRISE, budget_squeezed=True)
    quality = order_routes(ROUTES, cheapest_first=cheapest_first(Plan.PRO, budget_squeezed=False))
    cheap = order_routes(
        [route("openai", 10, "0.040"), route("fal", 20, "0.003")],
        cheapest_first=cheapest_first(Plan.FREE, budget_squeezed=False),
    )
    assert quality[0].provider == "replicate" and cheap[0].provider == "fal"


def test_squeeze_lasts_until_the_period_ends() -> None:
    from datetime import UTC, datetime

    from genhub_orchestrator.domain.routing import squeeze_until

    now = datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert squeeze_until("2026-11", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert squeeze_until("2026-12", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert squeeze_until("2026-11-21", now) == datetime(2026, 11, 22, tzinfo=UTC)
    assert squeeze_until("whatever", now) == datetime(2026, 12, 22, 10, tzinfo=UTC)


def test_staging_key() -> None:
    from uuid import UUID

    app = UUID("00000000-0000-0000-0000-00000000000a")
    job = UUID("00000000-0000-0000-0000-00000000000b")
    assert staging_key(app, job, 2) == f"staging/{app}/{job}/2.png"
    assert staging_key(app, job, 0, "image/jpeg").endswith("/0.jpg")
