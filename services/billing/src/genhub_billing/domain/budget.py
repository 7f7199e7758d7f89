"""App budgets: a monthly provider-cost budget in USD, with a soft and a hard cap.

At `spent >= budget x soft_cap_ratio` billing emits `budget.exceeded{soft}` (routing then
prefers the cheapest providers); at `spent >= budget` it emits `budget.exceeded{hard}` and
rejects new jobs with `budget_exceeded`. Each level is announced once per app and month.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

Level = Literal["soft", "hard"]


def period_of(moment: datetime) -> str:
    """Budget and plan periods are UTC calendar months: "2026-11"."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(UTC).strftime("%Y-%m")


def parse_cost(value: str) -> Decimal:
    """A job's provider cost (a decimal string on job.completed); bad or negative → 0."""
    try:
        cost = Decimal(value)
    except (InvalidOperation, TypeError):
        return Decimal(0)
    return cost if cost.is_finite() and cost > 0 else Decimal(0)


@dataclass(frozen=True, slots=True)
class Budget:
    monthly_usd: Decimal | None  # None: no budget
    soft_cap_ratio: Decimal = Decimal("0.8")

    def levels_reached(self, spent: Decimal) -> list[Level]:
        if self.monthly_usd is None:
            return []
        levels: list[Level] = []
        if spent >= self.monthly_usd * self.soft_cap_ratio:
            levels.append("soft")
        if spent >= self.monthly_usd:
            levels.append("hard")
        return levels

    def blocks_new_jobs(self, spent: Decimal) -> bool:
        return "hard" in self.levels_reached(spent)
