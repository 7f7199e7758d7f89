"""gateway_rate_limit_leases(): gateway_rate_limit_batch() that may also lease a replica extra
units of a large bucket (genhub_gateway.domain.leases says why and how many)

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

# As 0006's function (same order, same locks, same restart of ended windows, a refused
# request counts in none), and in addition: an admitted request's row may ask for up to
# `extras` more units of its bucket; it is granted at most (quota - count) / share of them,
# the count after its own unit deciding. It returns how many units it counted (`granted`, its
# own included; 0 when refused) and the window they count in (`window_started`), which a
# replica names when it gives unused units back. 0006's function stays for a rolling upgrade:
# replicas of the previous release still call it, on the same rows, in the same lock order.
_FUNCTION = """
CREATE FUNCTION gateway_rate_limit_leases(
    reqs integer[], buckets text[], windows integer[], quotas integer[], extras integer[],
    share integer
) RETURNS TABLE (req integer, bucket text, allowed boolean, count integer, reset_s float8,
                 granted integer, window_started timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    names text[];
    starts timestamptz[];
    counts integer[];
    wins integer[];
    maxes integer[];
    n integer := coalesce(array_length(reqs, 1), 0);
    first integer := 1;
    last integer;
    i integer;
    p integer;
    ok boolean;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    INSERT INTO rate_limit_counters AS c (bucket, window_start, window_s, max_count, count)
    SELECT DISTINCT ON (b.name) b.name, now(), b.win, b.quota, 0
    FROM unnest(buckets, windows, quotas) AS b(name, win, quota)
    ORDER BY b.name
    ON CONFLICT ON CONSTRAINT rate_limit_counters_pkey DO UPDATE SET count = c.count
    WHERE false;

    SELECT array_agg(c.bucket), array_agg(c.window_start), array_agg(c.count),
           array_agg(c.window_s), array_agg(c.max_count)
    INTO names, starts, counts, wins, maxes
    FROM rate_limit_counters AS c
    WHERE c.bucket = ANY(buckets);

    WHILE first <= n LOOP
        last := first;
        WHILE last < n AND reqs[last + 1] = reqs[first] LOOP
            last := last + 1;
        END LOOP;
        ok := true;
        FOR i IN first..last LOOP
            p := array_position(names, buckets[i]);
            IF starts[p] + make_interval(secs => wins[p]) <= now() THEN
                starts[p] := now();
                counts[p] := 0;
                wins[p] := windows[i];
                maxes[p] := quotas[i];
            ELSIF counts[p] < quotas[i] THEN
                wins[p] := windows[i];
                maxes[p] := quotas[i];
            ELSE
                ok := false;
            END IF;
        END LOOP;
        FOR i IN first..last LOOP
            p := array_position(names, buckets[i]);
            granted := 0;
            IF ok THEN
                granted := 1 + least(extras[i], (quotas[i] - counts[p] - 1) / share);
                counts[p] := counts[p] + granted;
            END IF;
            req := reqs[i];
            bucket := buckets[i];
            allowed := ok OR counts[p] < quotas[i];
            count := counts[p] - greatest(granted - 1, 0);
            reset_s := EXTRACT(EPOCH FROM (starts[p] + make_interval(secs => wins[p]) - now()));
            window_started := starts[p];
            RETURN NEXT;
        END LOOP;
        first := last + 1;
    END LOOP;

    UPDATE rate_limit_counters AS c
    SET window_start = s.start, count = s.cnt, window_s = s.win, max_count = s.quota
    FROM unnest(names, starts, counts, wins, maxes) AS s(name, start, cnt, win, quota)
    WHERE c.bucket = s.name
      AND (c.window_start, c.count, c.window_s, c.max_count)
          IS DISTINCT FROM (s.start, s.cnt, s.win, s.quota);
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
