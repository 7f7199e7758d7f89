"""Plans: tokens allocated to each end user once per UTC month, by the user's tier.

A user's tier is the `plan` of their latest job (JobSpec.plan); users billing has not seen a
tier for fall back to the app's plan setting. Allocations expire when the month ends (monthly
tokens do not roll over), so they are spent before grants that expire later.
"""

from datetime import UTC, datetime

DEFAULT_MONTHLY_TOKENS = {"free": 0, "basic": 500, "pro": 2000, "enterprise": 10000}


def effective_plan(user_plan: str | None, app_plan: str) -> str:
    return user_plan or app_plan


def period_end(period: str) -> datetime:
    """First instant of the month after `period` ("2026-11" → 2026-12-01T00:00Z)."""
    year, month = (int(part) for part in period.split("-"))
    if month == 12:
        return datetime(year + 1, 1, 1, tzinfo=UTC)
    return datetime(year, month + 1, 1, tzinfo=UTC)
