"""gateway_rate_limit_batch(): count a batch of requests against their rate-limit buckets in
one call, exactly as if each request had run the single-request upsert in turn

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 20:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The accept path group-commits concurrent requests (adapters/accept.py): one statement
# counts the whole micro-batch against its buckets and writes the admitted jobs. Requests are
# taken in order (req ascending; a request's limits are consecutive rows): a request is
# admitted when each of its buckets has room (an ended window restarts first), and then counts
# one in each; a refused request counts in none (the buckets that had room keep their
# restarted window and their new quota, as the single-request upsert followed by its give-back
# did). Every bucket of the batch is created if new and locked first, in bucket order, so
# batches from several replicas never deadlock; the locks are held until the batch commits.
_FUNCTION = """
CREATE FUNCTION gateway_rate_limit_batch(
    reqs integer[], buckets text[], windows integer[], quotas integer[]
) RETURNS TABLE (req integer, bucket text, allowed boolean, count integer, reset_s float8)
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
    -- Create the new buckets and lock every bucket of the batch, in bucket order (DO UPDATE
    -- locks the row even though its WHERE lets nothing change).
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
        -- Does every bucket of this request have room (after an ended window restarts)?
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
            IF ok THEN
                counts[p] := counts[p] + 1;
            END IF;
            req := reqs[i];
            bucket := buckets[i];
            allowed := ok OR counts[p] < quotas[i];
            count := counts[p];
            reset_s := EXTRACT(EPOCH FROM (starts[p] + make_interval(secs => wins[p]) - now()));
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
    op.execute("DROP FUNCTION gateway_rate_limit_batch(integer[], text[], integer[], integer[])")
