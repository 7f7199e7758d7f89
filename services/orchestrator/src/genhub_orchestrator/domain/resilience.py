"""Retries and circuit breakers as plain code: time and randomness are passed in.

- `backoff_delay`: exponential backoff with full jitter, a Retry-After from the provider wins
  (it is the provider telling us when it will take the call), everything capped.
- `CircuitBreaker`: one per provider and process. It opens on `failure_threshold`
  consecutive failures or on a failure ratio over a sliding window of recent calls, lets
  `half_open_probes` calls through after `cooldown_s`, closes on a successful probe and
  re-opens on a failed one. Its state maps to the provider's health:
  closed → healthy (degraded when recent failures pass `degraded_ratio`), half-open →
  degraded, open → down.
"""

import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 1  # extra attempts on the same route after a retryable failure
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    max_retry_after_s: float = 10.0  # a longer Retry-After moves on to the next route

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], default: "RetryPolicy") -> "RetryPolicy":
        return cls(
            max_retries=int(settings.get("max_retries", default.max_retries)),
            base_delay_s=float(settings.get("retry_base_delay_s", default.base_delay_s)),
            max_delay_s=float(settings.get("retry_max_delay_s", default.max_delay_s)),
            max_retry_after_s=float(settings.get("max_retry_after_s", default.max_retry_after_s)),
        )


def backoff_delay(
    retry: int,
    policy: RetryPolicy,
    *,
    retry_after_s: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before retry number `retry` (1-based), or None: do not retry here.

    None when the retries are used up or the provider asks for a wait longer than
    `max_retry_after_s` (another route serves the job sooner).
    """
    if retry < 1 or retry > policy.max_retries:
        return None
    if retry_after_s is not None:
        if retry_after_s > policy.max_retry_after_s:
            return None
        return max(0.0, retry_after_s)
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2 ** (retry - 1)))
    # "Full jitter": anywhere in [ceiling/2, ceiling] spreads retries of many jobs apart while
    # keeping a floor, so a retry never hammers the provider immediately.
    return float(ceiling / 2 + rand() * ceiling / 2)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5  # consecutive failures that open the circuit
    window: int = 20  # recent calls the failure ratio looks at
    min_calls: int = 10  # calls needed in the window before the ratio counts
    failure_ratio: float = 0.5
    degraded_ratio: float = 0.2
    cooldown_s: float = 30.0
    half_open_probes: int = 1

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], default: "BreakerConfig"
    ) -> "BreakerConfig":
        def pick(name: str, kind: type) -> Any:
            return kind(settings.get(f"breaker_{name}", getattr(default, name)))

        return cls(
            failure_threshold=pick("failure_threshold", int),
            window=pick("window", int),
            min_calls=pick("min_calls", int),
            failure_ratio=pick("failure_ratio", float),
            degraded_ratio=pick("degraded_ratio", float),
            cooldown_s=pick("cooldown_s", float),
            half_open_probes=pick("half_open_probes", int),
        )


class CircuitBreaker:
    """The breaker of one provider. `now` is any monotonic clock reading in seconds."""

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self.state = CircuitState.CLOSED
        self._recent: deque[bool] = deque(maxlen=self.config.window)  # True = failure
        self._consecutive = 0
        self._opened_at = 0.0
        self._probes = 0

    def reconfigure(self, config: BreakerConfig) -> None:
        if config != self.config:
            self.config = config
            self._recent = deque(self._recent, maxlen=config.window)

    def allow(self, now: float) -> bool:
        """May a call go to the provider now? Counts a half-open probe when it may."""
        if self.state is CircuitState.OPEN:
            if now - self._opened_at < self.config.cooldown_s:
                return False
            self.state = CircuitState.HALF_OPEN
            self._probes = 0
        if self.state is CircuitState.HALF_OPEN:
            if self._probes >= self.config.half_open_probes:
                return False
            self._probes += 1
        return True

    def record(self, *, success: bool, now: float) -> None:
        """The outcome of an allowed call. Only provider faults count as failures."""
        self._recent.append(not success)
        if success:
            self._consecutive = 0
            if self.state is CircuitState.HALF_OPEN:
                self._close()
            return
        self._consecutive += 1
        if self.state is CircuitState.HALF_OPEN or self._should_open():
            self._open(now)

    def release_probe(self) -> None:
        """An allowed call ended without a verdict (cancelled, terminal input error)."""
        if self.state is CircuitState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    @property
    def failure_ratio(self) -> float:
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def health(self, now: float) -> Health:
        if self.state is CircuitState.OPEN:
            # Once the cool-down is over the next call is a probe: the provider is degraded.
            if now - self._opened_at >= self.config.cooldown_s:
                return Health.DEGRADED
            return Health.DOWN
        if self.state is CircuitState.HALF_OPEN:
            return Health.DEGRADED
        if len(self._recent) >= self.config.min_calls and (
            self.failure_ratio >= self.config.degraded_ratio
        ):
            return Health.DEGRADED
        return Health.HEALTHY

    def _should_open(self) -> bool:
        if self._consecutive >= self.config.failure_threshold:
            return True
        return (
            len(self._recent) >= self.config.min_calls
            and self.failure_ratio >= self.config.failure_ratio
        )

    def _open(self, now: float) -> None:
        self.state = CircuitState.OPEN
        self._opened_at = now
        self._probes = 0

    def _close(self) -> None:
        self.state = CircuitState.CLOSED
        self._consecutive = 0
        self._probes = 0
        self._recent.clear()
