"""Shared rate-limit counters in the gateway's PostgreSQL (one row per bucket).

`hit` counts a request against several buckets with ONE autocommit statement: an upsert
that opens a new window when the old one has ended and otherwise adds one only while
`count < max_count`. Rows are locked in bucket order for the statement's duration only, so
replicas never admit more than the quota and never deadlock. When one bucket refuses, the
buckets that did count the request give the unit back (a second statement, refusals only).
"""

from collections.abc import Sequence

from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.domain.ratelimit import Limit, Usage

_EXPIRED = "c.window_start + make_interval(secs => c.window_s) <= now()"
_RESET = "EXTRACT(EPOCH FROM (window_start + make_interval(secs => window_s) - now()))::float8"


def _hit_sql(n: int) -> str:
    values = ", ".join(f"(${3 * i + 1}, now(), ${3 * i + 2}, ${3 * i + 3}, 1)" for i in range(n))
    # Only placeholders and fixed fragments are interpolated; values are bound parameters.
    return f"""
        INSERT INTO rate_limit_counters AS c (bucket, window_start, window_s, max_count, count)
        VALUES {values}
        ON CONFLICT (bucket) DO UPDATE SET
            window_start = CASE WHEN {_EXPIRED} THEN now() ELSE c.window_start END,
            count = CASE WHEN {_EXPIRED} THEN 1 ELSE c.count + 1 END,
            window_s = EXCLUDED.window_s,
            max_count = EXCLUDED.max_count
        WHERE {_EXPIRED} OR c.count < EXCLUDED.max_count
        RETURNING bucket, count, {_RESET} AS reset_s
    """  # noqa: S608


_HIT_SQL = {n: _hit_sql(n) for n in (1, 2, 3)}
_STATE_SQL = (
    f"SELECT bucket, count, {_RESET} AS reset_s FROM rate_limit_counters"  # noqa: S608
    " WHERE bucket = ANY($1::text[])"
)
_GIVE_BACK_SQL = (
    "UPDATE rate_limit_counters SET count = count - 1 WHERE bucket = ANY($1::text[]) AND count > 0"
)


class RateLimiter:
    def __init__(self, pool: PgPool) -> None:
        self._pool = pool

    async def hit(self, limits: Sequence[Limit]) -> list[Usage]:
        """Count one request against every limit. It is admitted when every usage is
        `allowed` (its bucket had room); otherwise nothing stays counted."""
        if not limits:
            return []
        ordered = sorted(limits, key=lambda limit: limit.bucket)  # one lock order everywhere
        args: list[object] = []
        for limit in ordered:
            args += [limit.bucket, limit.window_s, limit.quota]
        sql = _HIT_SQL.get(len(ordered)) or _hit_sql(len(ordered))
        async with self._pool.connection() as conn:
            counted = {row["bucket"]: row for row in await conn.fetch(sql, *args)}
            refused = [limit.bucket for limit in ordered if limit.bucket not in counted]
            state = {}
            if refused:
                state = {row["bucket"]: row for row in await conn.fetch(_STATE_SQL, refused)}
                if counted:  # not admitted: the request must not use up the others' quota
                    await conn.execute(_GIVE_BACK_SQL, list(counted))
        usages = []
        for limit in limits:
            row = counted.get(limit.bucket)
            if row is not None:
                given_back = 1 if refused else 0
                usages.append(
                    Usage(limit, True, int(row["count"]) - given_back, float(row["reset_s"]))
                )
            else:
                known = state.get(limit.bucket)
                reset = float(known["reset_s"]) if known is not None else float(limit.window_s)
                usages.append(Usage(limit, False, limit.quota, reset))
        return usages
