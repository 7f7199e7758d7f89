"""Retry schedule with jitter: when the next attempt happens after a failed one."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrySchedule:
    """`delays_s[i]` is the wait after failed attempt i+1; one attempt more than delays."""

    delays_s: tuple[float, ...]
    jitter: float = 0.2

    @classmethod
    def parse(cls, text: str, jitter: float = 0.2) -> "RetrySchedule":
        """Parse "5,30,300,1800" (seconds). An empty string means a single attempt."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            delays = tuple(float(p) for p in parts)
        except ValueError as exc:
            raise ValueError(f"retry schedule must be comma-separated seconds: {text!r}") from exc
        if any(d < 0 for d in delays):
            raise ValueError("retry delays must not be negative")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        return cls(delays, jitter)

    @property
    def max_attempts(self) -> int:
        return len(self.delays_s) + 1

    def delay_after(self, attempts_made: int, rand: Callable[[], float]) -> float | None:
        """Seconds until the next attempt, or None when the schedule is exhausted.

        `rand()` returns a float in [0, 1); the delay lands in base * (1 +/- jitter) so retries of
        many deliveries that failed together spread out instead of arriving in a burst.
        """
        if attempts_made < 1:
            raise ValueError("attempts_made starts at 1")
        if attempts_made > len(self.delays_s):
            return None
        base = self.delays_s[attempts_made - 1]
        return base * (1 + self.jitter * (2 * rand() - 1))
