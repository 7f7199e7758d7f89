"""The read-model projection's write: one statement per batch, no ORM objects.

Each job's events arrive folded into a `JobDelta` (domain/readmodel.py); the statement
applies every delta to its row with `readmodel.apply_delta`'s rule written in SQL, so the row
is read and written by PostgreSQL in one pass:

- `e`: the deltas, one row per job, from parallel arrays (`unnest`);
- `locked`: the batch's jobs locked in job id order (`ORDER BY … FOR UPDATE` locks in sort
  order). Batches of different topics run concurrently; the same order everywhere makes them
  wait for each other instead of deadlocking;
- the UPDATE computes every column from the row and the delta. If another batch changed the
  row after this statement's snapshot, PostgreSQL re-evaluates the SET expressions on the
  newest row version (READ COMMITTED), so no event's effect is lost. Rows the delta leaves
  as they are are not written (nor their `updated_at` touched);
- the answer: the deltas whose job does not exist (in this app).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from genhub_platform import db
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_gateway.domain import readmodel
from genhub_gateway.domain.readmodel import JobDelta

JobKey = tuple[UUID, UUID]  # (app id, job id)

# (column of `e`, array type): the order of the statement's parameters after $1 (updated_at).
_INPUT = (
    ("app_id", "uuid"),
    ("job_id", "uuid"),
    ("advance_status", "text"),
    ("advance_rank", "int"),
    ("end_status", "text"),
    ("end_error_code", "text"),
    ("end_error_message", "text"),
    ("end_error_details", "text"),  # JSON text
    ("end_outputs", "text"),  # JSON text
    ("end_provider", "text"),
    ("end_attempts", "int"),
    ("end_at", "timestamptz"),
    ("tokens_reserved", "int"),
    ("reserved_at", "timestamptz"),
    ("provider", "text"),
    ("attempts", "int"),
    ("started_at", "timestamptz"),
    ("charged", "int"),
    ("refunded", "int"),
    ("settled_at", "timestamptz"),
)

_RANK = (
    "CASE j.status "
    + " ".join(f"WHEN '{s.value}' THEN {readmodel.rank(s)}" for s in readmodel.LIVE_STATUSES)
    + f" ELSE {readmodel.TERMINAL_RANK} END"
)
_LIVE = "j.status IN (" + ", ".join(f"'{s.value}'" for s in readmodel.LIVE_STATUSES) + ")"
_ENDS = f"({_LIVE} AND e.end_status IS NOT NULL)"  # the delta's ending applies to this row

# Column -> its new value: readmodel.apply_delta in SQL.
_NEW = {
    "status": f"CASE WHEN {_ENDS} THEN e.end_status"
    f" WHEN {_LIVE} AND e.advance_rank > {_RANK} THEN e.advance_status ELSE j.status END",
    "tokens_reserved": "COALESCE(e.tokens_reserved, j.tokens_reserved)",
    "tokens_charged": "CASE WHEN e.settled_at IS NULL THEN j.tokens_charged ELSE e.charged END",
    "tokens_refunded": "CASE WHEN e.settled_at IS NULL THEN j.tokens_refunded ELSE e.refunded END",
    "provider": f"CASE WHEN {_LIVE} THEN COALESCE(e.end_provider, e.provider, j.provider)"
    " ELSE j.provider END",
    "attempts": "GREATEST(j.attempts, e.attempts,"
    f" CASE WHEN {_LIVE} THEN e.end_attempts ELSE 0 END)",
    "error_code": f"CASE WHEN {_ENDS} THEN e.end_error_code ELSE j.error_code END",
    "error_message": f"CASE WHEN {_ENDS} THEN e.end_error_message ELSE j.error_message END",
    "error_details": f"CASE WHEN {_ENDS} THEN e.end_error_details::jsonb ELSE j.error_details END",
    "outputs": f"CASE WHEN {_ENDS} THEN COALESCE(e.end_outputs::jsonb, j.outputs)"
    " ELSE j.outputs END",
    "reserved_at": "COALESCE(j.reserved_at, e.reserved_at)",
    "started_at": "COALESCE(j.started_at, e.started_at)",
    "completed_at": f"CASE WHEN {_ENDS} THEN e.end_at ELSE j.completed_at END",
    "settled_at": "COALESCE(e.settled_at, j.settled_at)",
}

_OLD_ROW = ", ".join(f"j.{column}" for column in _NEW)
_NEW_ROW = ", ".join(_NEW.values())
_SAME_JOB = "{a}.app_id = {b}.app_id AND {a}.job_id = {b}.job_id"

# Built once from the constants above; no value is ever formatted into it (all are $n).
PROJECT_SQL = f"""
WITH e AS (
    SELECT * FROM unnest({", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_INPUT, 2))})
        AS e({", ".join(name for name, _ in _INPUT)})
), locked AS (
    SELECT j.app_id, j.job_id FROM jobs j JOIN e ON {_SAME_JOB.format(a="j", b="e")}
    ORDER BY j.job_id FOR UPDATE OF j
), written AS (
    UPDATE jobs j SET {", ".join(f"{column} = {value}" for column, value in _NEW.items())},
        updated_at = $1
    FROM e JOIN locked l ON {_SAME_JOB.format(a="l", b="e")}
    WHERE {_SAME_JOB.format(a="j", b="e")}
      AND ({_OLD_ROW}) IS DISTINCT FROM ({_NEW_ROW})
)
SELECT e.app_id, e.job_id FROM e
WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE {_SAME_JOB.format(a="l", b="e")})
"""  # noqa: S608


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _row(key: JobKey, d: JobDelta) -> tuple[Any, ...]:
    end, settled = d.ending, d.settlement
    return (
        *key,
        d.advance_to.value if d.advance_to else None,
        readmodel.rank(d.advance_to) if d.advance_to else None,
        end.status.value if end else None,
        end.error_code if end else None,
        end.error_message if end else None,
        _json(end.error_details) if end else None,
        _json(end.outputs) if end else None,
        end.provider if end else None,
        end.attempts if end else 0,
        end.at if end else None,
        d.tokens_reserved,
        d.reserved_at,
        d.provider,
        d.attempts,
        d.started_at,
        settled.charged if settled else None,
        settled.refunded if settled else None,
        settled.at if settled else None,
    )


async def write_deltas(
    session: AsyncSession, deltas: dict[JobKey, JobDelta], now: datetime
) -> list[JobKey]:
    """Apply each job's delta to its row in the session's transaction; the keys of jobs that
    do not exist (in that app) are returned."""
    if not deltas:
        return []
    rows = [_row(key, deltas[key]) for key in sorted(deltas, key=lambda k: k[1])]
    columns = [list(column) for column in zip(*rows, strict=True)]
    # Straight to asyncpg in the session's transaction (genhub_platform.db.fetch): through
    # SQLAlchemy the statement cost more CPU than the rest of the projection.
    rows = await db.fetch(session, PROJECT_SQL, now, *columns)
    return [(app_id, job_id) for app_id, job_id in rows]
