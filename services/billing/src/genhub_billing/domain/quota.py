"""Free daily quota: outputs an end user may generate for free per UTC day, set per app.

A job is free only when the quota left covers all of its outputs (no mixing of free and paid
outputs in one job); otherwise it is paid in full. The quota is counted when the job is
reserved and given back for outputs not delivered (failed, cancelled, expired, partial).
"""

from datetime import UTC, date, datetime


def utc_day(moment: datetime) -> date:
    """The quota day a moment belongs to: quotas reset at UTC midnight."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(UTC).date()


def quota_left(per_day: int, used: int) -> int:
    return max(0, per_day - used)


def covers(per_day: int, used: int, outputs: int) -> bool:
    """Whether the free quota pays for a job of `outputs` outputs."""
    return outputs >= 1 and quota_left(per_day, used) >= outputs


def refund(free_outputs: int, delivered: int) -> int:
    """Free outputs given back when a free job settles: those that were not delivered."""
    if free_outputs < 0 or delivered < 0:
        raise ValueError("counts must be >= 0")
    return free_outputs - min(free_outputs, delivered)
