"""Retry schedule with jitter: when each attempt of a delivery happens."""

from collections.abc import Callable
from dataclasses import dataclass

# Standard Webhooks / Svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
PRODUCTION_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"


@dataclass(frozen=True)
class RetrySchedule:
    """`initial_delay_s` before the first attempt, then `delays_s[i]` after failed attempt i+1;
    one attempt per entry of the configured list."""

    delays_s: tuple[float, ...]
    jitter: float = 0.2
    initial_delay_s: float = 0.0

    @classmethod
    def parse(cls, text: str, jitter: float = 0.2) -> "RetrySchedule":
        """Parse "0,5,300" (seconds before each attempt, counted from the previous one; the
        first entry is the wait before the first attempt, normally 0)."""
        parts = [p.strip() for p in text.split(",")]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError as exc:
            raise ValueError(f"retry schedule must be comma-separated seconds: {text!r}") from exc
        if any(d < 0 for d in values):
            raise ValueError("retry delays must not be negative")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        return cls(values[1:], jitter, values[0])

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
