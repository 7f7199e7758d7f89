"""The accept path's write: the job's read-model row, its `job.requested` outbox row and (with
an Idempotency-Key) the key's record with the answer, in ONE statement.

One data-modifying CTE run in autocommit is one atomic transaction and one round trip. The
key is inserted first with `ON CONFLICT DO NOTHING`: when the app already used the key, nothing
is written and the caller takes the slow path (replay, 422 mismatch, 409 in flight, or taking
over an expired key). A concurrent request with the same key blocks on the key's unique index
until this statement commits, then finds the key recorded and replays the answer.
"""

import json
from typing import Any

from genhub_contracts import Envelope
from opentelemetry import propagate

from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.domain.jobs import NewJob

_JOB_AND_OUTBOX = """
    j AS (
        INSERT INTO jobs (job_id, app_id, user_id, model, status, priority, spec, metadata,
                          outputs, attempts, created_at, updated_at)
        SELECT $1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, '[]'::jsonb, 0, now(), now()
        {guard}
        RETURNING 1
    )
    INSERT INTO outbox (topic, key, payload, headers)
    SELECT $9, $10, $11, $12::jsonb
    WHERE EXISTS (SELECT 1 FROM j)
    RETURNING id
"""

_WITH_KEY = (
    """
    WITH k AS (
        INSERT INTO idempotency_keys (app_id, key, request_hash, state, owner, locked_until,
                                      response_status, response_body, job_id, created_at)
        -- owner: a completed key has no holder; the job id fills the column.
        VALUES ($2, $13, $14, 'completed', $1, now(), $15, $16::jsonb, $1, now())
        ON CONFLICT (app_id, key) DO NOTHING
        RETURNING 1
    ),"""  # noqa: S608 (fixed SQL fragments; values are bound parameters)
    + _JOB_AND_OUTBOX.format(guard="WHERE EXISTS (SELECT 1 FROM k)")
)
_WITHOUT_KEY = "WITH" + _JOB_AND_OUTBOX.format(guard="")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class JobAcceptor:
    def __init__(self, pool: PgPool) -> None:
        self._pool = pool

    async def accept(
        self,
        job: NewJob,
        event: Envelope[Any],
        *,
        idempotency: tuple[str, str, int, dict[str, Any]] | None = None,
    ) -> bool:
        """Write the job and its event (and the key with its answer: (key, request hash,
        status, body)). False, with nothing written, when the app already has that key.

        The event's outbox row holds what `OutboxMessage.from_event` would put there (the
        trace context of this request, the event type header), without building that ORM
        object: on the hot path its construction costs more than the insert."""
        headers: dict[str, str] = {}
        propagate.inject(headers)
        headers["event-type"] = event.type
        args: list[Any] = [
            job.job_id,
            job.app_id,
            job.user_id,
            job.model,
            job.status,
            job.priority,
            _json(job.spec),
            _json(job.metadata),
            event.TOPIC,
            event.key,
            event.model_dump_json().encode(),
            _json(headers),
        ]
        statement = _WITHOUT_KEY
        if idempotency is not None:
            key, request_hash, status, body = idempotency
            args += [key, request_hash, status, _json(body)]
            statement = _WITH_KEY
        async with self._pool.connection() as conn:
            written = await conn.fetchval(statement, *args)
        return written is not None
