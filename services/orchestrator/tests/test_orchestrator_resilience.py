"""Backoff and the circuit breaker, with a fake clock and fake randomness (no I/O)."""

import pytest
from genhub_orchestrator.domain.resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitState,
    Health,
    RetryPolicy,
    backoff_delay,
)
from genhub_orchestrator.services.health import HealthBoard
from genhub_platform.uow import UnitOfWork

POLICY = RetryPolicy(max_retries=3, base_delay_s=0.2, max_delay_s=1.0, max_retry_after_s=10)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [backoff_delay(n, POLICY, rand=lambda: 0.0) for n in (1, 2, 3)]
    high = [backoff_delay(n, POLICY, rand=lambda: 1.0) for n in (1, 2, 3)]
    assert low == [0.1, 0.2, 0.4]
    assert high == [0.2, 0.4, 0.8]
    capped = RetryPolicy(max_retries=10, base_delay_s=0.2, max_delay_s=1.0)
    assert backoff_delay(9, capped, rand=lambda: 1.0) == 1.0


def test_backoff_stops_after_max_retries() -> None:
    assert backoff_delay(4, POLICY) is None
    assert backoff_delay(1, RetryPolicy(max_retries=0)) is None


def test_retry_after_wins_unless_too_long() -> None:
    assert backoff_delay(1, POLICY, retry_after_s=3.0) == 3.0
    assert backoff_delay(1, POLICY, retry_after_s=60.0) is None  # next route instead


def test_policy_from_route_settings() -> None:
    policy = RetryPolicy.from_settings({"max_retries": 0}, POLICY)
    assert policy.max_retries == 0 and policy.base_delay_s == POLICY.base_delay_s


CONFIG = BreakerConfig(failure_threshold=3, window=10, min_calls=6, failure_ratio=0.5, cooldown_s=5)


def test_opens_after_consecutive_failures_and_reports_down() -> None:
    breaker = CircuitBreaker(CONFIG)
    for _ in range(2):
        assert breaker.allow(0)
        breaker.record(success=False, now=0)
    assert breaker.state is CircuitState.CLOSED
    breaker.record(success=False, now=1)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow(2) and breaker.health(2) is Health.DOWN


def test_opens_on_failure_ratio_without_a_streak() -> None:
    breaker = CircuitBreaker(CONFIG)
    for outcome in [True, False, True, False, True, False]:  # 50% over 6 calls, no streak
        breaker.record(success=outcome, now=0)
    assert breaker.state is CircuitState.OPEN


def test_degraded_while_failures_mount() -> None:
    breaker = CircuitBreaker(
        BreakerConfig(
            failure_threshold=99, window=10, min_calls=5, failure_ratio=0.9, degraded_ratio=0.2
        )
    )
    for outcome in [True, True, True, True, False]:
        breaker.record(success=outcome, now=0)
    assert breaker.state is CircuitState.CLOSED and breaker.health(0) is Health.DEGRADED


def test_half_open_probe_closes_on_success() -> None:
    breaker = CircuitBreaker(CONFIG)
    for _ in range(3):
        breaker.record(success=False, now=0)
    assert not breaker.allow(4.9)
    assert breaker.health(5) is Health.DEGRADED  # cooled down: the next call is a probe
    assert breaker.allow(5) and breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow(5)  # one probe at a time
    breaker.record(success=True, now=5.5)
    assert breaker.state is CircuitState.CLOSED and breaker.health(6) is Health.HEALTHY
    assert breaker.allow(6)


def test_half_open_probe_failure_reopens() -> None:
    breaker = CircuitBreaker(CONFIG)
    for _ in range(3):
        breaker.record(success=False, now=0)
    assert breaker.allow(6)
    breaker.record(success=False, now=6)
    assert breaker.state is CircuitState.OPEN and not breaker.allow(10)
    assert breaker.allow(11.1)


def test_released_probe_frees_the_slot() -> None:
    breaker = CircuitBreaker(CONFIG)
    for _ in range(3):
        breaker.record(success=False, now=0)
    assert breaker.allow(5)
    breaker.release_probe()
    assert breaker.allow(5)


@pytest.mark.parametrize("key", ["failure_threshold", "cooldown_s"])
def test_breaker_config_from_provider_settings(key: str) -> None:
    config = BreakerConfig.from_settings({f"breaker_{key}": 2}, CONFIG)
    assert getattr(config, key) == 2 and config.window == CONFIG.window


def test_health_board_tells_when_a_provider_health_changed() -> None:
    clock = [100.0]

    def no_database() -> UnitOfWork:
        raise AssertionError("changed() and changes() need no database")

    board = HealthBoard(
        no_database, BreakerConfig(failure_threshold=2, cooldown_s=30), clock=lambda: clock[0]
    )
    assert not board.changed("p")  # no breaker yet: nothing to publish
    breaker = board.breaker("p")
    breaker.record(success=True, now=clock[0])
    assert not board.changed("p")
    breaker.record(success=False, now=clock[0])
    breaker.record(success=False, now=clock[0])  # opens: down
    assert board.changed("p")
    assert [(c.provider, c.health) for c in board.changes()] == [("p", Health.DOWN)]
    assert not board.changed("p")  # published
    clock[0] += 31  # cooled down: degraded, without any call
    assert board.changed("p")
