"""Rate-limit rules: which buckets a request counts against, and the headers that describe them.

The counting itself is one atomic statement in the gateway's database (adapters/ratelimit.py),
so every replica shares the same counters. Each bucket is a fixed window that opens with the
first request after the previous window ended; a request is admitted only if every bucket it
counts against still has room (`count < quota` before it).

Headers follow draft-ietf-httpapi-ratelimit-headers (structured fields):
`RateLimit-Policy: "app";q=6000;w=60, "user";q=600;w=60` and
`RateLimit: "app";r=5999;t=42, "user";r=599;t=42` (r = remaining, t = seconds to reset).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

WINDOW_S = 60


@dataclass(frozen=True)
class Limit:
    name: str  # the policy name in the headers: "app", "user", "auth"
    bucket: str  # the counter's key, shared by all replicas
    quota: int  # requests per window
    window_s: int = WINDOW_S


@dataclass(frozen=True)
class Usage:
    limit: Limit
    allowed: bool
    count: int  # requests counted in the window, this one included when allowed
    reset_s: float  # seconds until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit.quota - self.count)


def request_limits(
    app_id: UUID, app_quota: int, user_id: str | None, user_quota: int
) -> list[Limit]:
    limits = [Limit("app", f"app:{app_id}", app_quota)]
    if user_id is not None:
        limits.append(Limit("user", f"user:{app_id}:{user_id}", user_quota))
    return limits


def auth_failure_limit(source: str, quota: int) -> Limit:
    return Limit("auth", f"auth:{source}", quota)


def admitted(usages: Sequence[Usage]) -> bool:
    return all(u.allowed for u in usages)


def retry_after_s(usages: Sequence[Usage]) -> int:
    """Whole seconds until every refusing bucket has room again (at least 1)."""
    waits = [u.reset_s for u in usages if not u.allowed]
    return max(1, math.ceil(max(waits, default=1.0)))


def headers(usages: Sequence[Usage]) -> dict[str, str]:
    if not usages:
        return {}
    policy = ", ".join(f'"{u.limit.name}";q={u.limit.quota};w={u.limit.window_s}' for u in usages)
    state = ", ".join(
        f'"{u.limit.name}";r={u.remaining};t={max(0, math.ceil(u.reset_s))}' for u in usages
    )
    out = {"RateLimit-Policy": policy, "RateLimit": state}
    if not admitted(usages):
        out["Retry-After"] = str(retry_after_s(usages))
    return out
