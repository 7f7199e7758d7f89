"""gateway_rate_limit_leases(): gateway_rate_limit_batch(), then lease the replica extra units
of its large buckets (genhub_gateway.domain.leases says why and how many)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Counting is 0006's function, unchanged (and still there for replicas of the previous release
# during a rolling upgrade): the batch's requests are counted in order first. Then each row
# that asks for `extras` (the first of the batch on its bucket), when its request was
# admitted, is granted up to that many more units of its bucket, and at most
# (quota - count) / share of them, the bucket's count after the whole batch deciding: the
# batch's own requests come first. The bucket is still locked by the counting. Each row
# returns how many units it was leased, the count the first of them stands for, and the
# window they were counted in (which a replica names when it gives unused units back).
_FUNCTION = """
CREATE FUNCTION gateway_rate_limit_leases(
    reqs integer[], buckets text[], windows integer[], quotas integer[], extras integer[],
    share integer
) RETURNS TABLE (req integer, bucket text, allowed boolean, count integer, reset_s float8,
                 leased integer, leased_from integer, window_started timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    c_req integer[];
    c_bucket text[];
    c_allowed boolean[];
    c_count integer[];
    c_reset float8[];
    g_bucket text[];
    g_units integer[];
    g_from integer[];
    g_start timestamptz[];
BEGIN
    IF coalesce(array_length(reqs, 1), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(b.req ORDER BY b.n), array_agg(b.bucket ORDER BY b.n),
           array_agg(b.allowed ORDER BY b.n), array_agg(b.count ORDER BY b.n),
           array_agg(b.reset_s ORDER BY b.n)
    INTO c_req, c_bucket, c_allowed, c_count, c_reset
    FROM gateway_rate_limit_batch(reqs, buckets, windows, quotas)
         WITH ORDINALITY AS b(req, bucket, allowed, count, reset_s, n);

    IF 0 < ANY(extras) THEN
        WITH x AS (
            SELECT * FROM unnest(c_req, c_bucket, c_allowed, c_count, extras, quotas)
                AS x(req, bucket, allowed, cnt, extra, quota)
        ),
        admitted AS (SELECT x.req FROM x GROUP BY x.req HAVING bool_and(x.allowed)),
        after AS (SELECT x.bucket, max(x.cnt) AS cnt FROM x GROUP BY x.bucket),
        asked AS (
            SELECT x.bucket, least(x.extra, (x.quota - a.cnt) / share) AS units
            FROM x JOIN after AS a ON a.bucket = x.bucket
            WHERE x.extra > 0 AND x.req IN (SELECT r.req FROM admitted AS r)
        ),
        granted AS (
            UPDATE rate_limit_counters AS c SET count = c.count + k.units
            FROM asked AS k
            WHERE c.bucket = k.bucket AND k.units > 0
            RETURNING c.bucket, k.units, c.count - k.units + 1 AS first, c.window_start
        )
        SELECT array_agg(g.bucket), array_agg(g.units), array_agg(g.first),
               array_agg(g.window_start)
        INTO g_bucket, g_units, g_from, g_start
        FROM granted AS g;
    END IF;

    RETURN QUERY
    SELECT x.req, x.bucket, x.allowed, x.cnt, x.reset, coalesce(g.units, 0), g.first, g.start
    FROM unnest(c_req, c_bucket, c_allowed, c_count, c_reset, extras)
         WITH ORDINALITY AS x(req, bucket, allowed, cnt, reset, extra, n)
    LEFT JOIN unnest(g_bucket, g_units, g_from, g_start) AS g(bucket, units, first, start)
        ON g.bucket = x.bucket AND x.extra > 0
    ORDER BY x.n;
END;
$$
"""


def upgrade() -> None:
    op.execute(_FUNCTION)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION gateway_rate_limit_leases("
        "integer[], text[], integer[], integer[], integer[], integer)"
    )
