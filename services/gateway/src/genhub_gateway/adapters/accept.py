"""The accept path's database work, group-committed: rate-limit hits and job writes of
concurrent requests go to PostgreSQL together, as ONE statement (one round trip, one
transaction, one commit) per micro-batch (adapters/batcher.py).

An item is a request's rate-limit hit (its buckets), its job write (the read-model row, its
`job.requested` outbox row and, with an Idempotency-Key, the key's record with the answer), or
both. The statement:

1. counts the batch's requests against their buckets in request order with
   `gateway_rate_limit_batch()` (migration 0006): exactly the single-request semantics, so
   limits stay exact across replicas (the buckets are locked until the batch commits);
2. inserts the keys of the writes whose request was admitted, `ON CONFLICT DO NOTHING`, in
   (app, key) order: a key the app already used is not written, and neither is its job;
3. inserts the jobs whose key was written (or that have none) and their outbox rows.

A write answered "not written" takes the slow path (replay, 422 mismatch, 409 in flight, or
taking over an expired key). A concurrent batch with the same key waits on the key's unique
index until this one commits and then finds the key recorded. A request is answered only
after its batch committed; when a batch fails (say a deadlock between replicas), each item is
run again on its own, so a failure reaches only its cause.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from genhub_contracts import Envelope
from opentelemetry import propagate

from genhub_gateway.adapters.batcher import MicroBatcher
from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.domain.jobs import NewJob
from genhub_gateway.domain.ratelimit import Limit, Usage

_BATCH = """
    WITH rl AS MATERIALIZED (
        SELECT * FROM gateway_rate_limit_batch($1::int[], $2::text[], $3::int[], $4::int[])
    ),
    w AS MATERIALIZED (
        SELECT * FROM unnest(
            $5::int[], $6::uuid[], $7::uuid[], $8::text[], $9::text[], $10::text[],
            $11::int[], $12::text[], $13::text[], $14::text[], $15::bytea[], $16::bytea[],
            $17::text[], $18::text[], $19::text[], $20::int[], $21::text[]
        ) AS w(req, job_id, app_id, user_id, model, status, priority, spec, metadata, topic,
               key, payload, headers, idem_key, request_hash, response_status, response_body)
        WHERE NOT EXISTS (SELECT 1 FROM rl WHERE rl.req = w.req AND NOT rl.allowed)
    ),
    k AS (
        INSERT INTO idempotency_keys (app_id, key, request_hash, state, owner, locked_until,
                                      response_status, response_body, job_id, created_at)
        -- owner: a completed key has no holder; the job id fills the column.
        SELECT app_id, idem_key, request_hash, 'completed', job_id, now(), response_status,
               response_body::jsonb, job_id, now()
        FROM w WHERE idem_key IS NOT NULL
        ORDER BY app_id, idem_key
        ON CONFLICT (app_id, key) DO NOTHING
        RETURNING job_id
    ),
    j AS (
        INSERT INTO jobs (job_id, app_id, user_id, model, status, priority, spec, metadata,
                          outputs, attempts, created_at, updated_at)
        SELECT job_id, app_id, user_id, model, status, priority, spec::jsonb, metadata::jsonb,
               '[]'::jsonb, 0, now(), now()
        FROM w WHERE idem_key IS NULL OR job_id IN (SELECT job_id FROM k)
        RETURNING job_id
    ),
    o AS (
        INSERT INTO outbox (topic, key, payload, headers)
        SELECT w.topic, w.key, w.payload, w.headers::jsonb
        FROM w JOIN j ON j.job_id = w.job_id
        ORDER BY w.req
    )
    SELECT rl.req, rl.bucket, rl.allowed, rl.count, rl.reset_s, NULL::boolean AS written
    FROM rl
    UNION ALL
    SELECT w.req, NULL, NULL, NULL, NULL, j.job_id IS NOT NULL
    FROM w LEFT JOIN j ON j.job_id = w.job_id
"""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()  # jsonb: PostgreSQL normalizes the text anyway


@dataclass(frozen=True)
class JobWrite:
    """A job's rows as the statement takes them (JSON already serialized)."""

    job_id: UUID
    app_id: UUID
    user_id: str
    model: str
    status: str
    priority: int
    spec: str
    metadata: str
    topic: str
    key: bytes
    payload: bytes
    headers: str
    # With an Idempotency-Key: (key, request hash, answer status, answer body as JSON).
    idempotency: tuple[str, str, int, str] | None = None

    @classmethod
    def of(
        cls,
        job: NewJob,
        event: Envelope[Any],
        idempotency: tuple[str, str, int, dict[str, Any]] | None = None,
    ) -> "JobWrite":
        """The event's outbox row holds what `OutboxMessage.from_event` would put there (the
        trace context of this request, the event type header), without building that ORM
        object: on the hot path its construction costs more than the insert."""
        headers: dict[str, str] = {}
        propagate.inject(headers)
        headers["event-type"] = event.type
        recorded = None
        if idempotency is not None:
            key, request_hash, status, body = idempotency
            recorded = (key, request_hash, status, _json(body))
        return cls(
            job_id=job.job_id,
            app_id=job.app_id,
            user_id=job.user_id,
            model=job.model,
            status=job.status,
            priority=job.priority,
            spec=job.spec_json,
            metadata=_json(job.metadata),
            topic=event.TOPIC,
            key=event.key,
            payload=event.model_dump_json().encode(),
            headers=_json(headers),
            idempotency=recorded,
        )


@dataclass(frozen=True)
class Item:
    limits: Sequence[Limit] = ()
    write: JobWrite | None = None


@dataclass(frozen=True)
class Outcome:
    usages: list[Usage]  # one per limit, in the order given
    written: bool  # the job was written (False: refused by a limit, or the key existed)

    @property
    def admitted(self) -> bool:
        return all(u.allowed for u in self.usages)


def batch_args(items: Sequence[Item]) -> list[list[Any]]:
    """The statement's 21 array parameters: limits (each request's in bucket order, the
    lock order everywhere), then writes, each row tagged with its item's index."""
    columns: list[list[Any]] = [[] for _ in range(21)]
    for req, item in enumerate(items):
        for limit in sorted(item.limits, key=lambda limit: limit.bucket):
            for column, value in zip(
                columns[:4], (req, limit.bucket, limit.window_s, limit.quota), strict=True
            ):
                column.append(value)
        w = item.write
        if w is not None:
            key, request_hash, status, body = w.idempotency or (None, None, None, None)
            values = (
                req, w.job_id, w.app_id, w.user_id, w.model, w.status, w.priority, w.spec,
                w.metadata, w.topic, w.key, w.payload, w.headers, key, request_hash, status, body,
            )  # fmt: skip
            for column, value in zip(columns[4:], values, strict=True):
                column.append(value)
    return columns


def outcomes(items: Sequence[Item], rows: Sequence[Any]) -> list[Outcome]:
    """Each item's outcome from the statement's rows (req, bucket, allowed, count, reset_s,
    written)."""
    counted: dict[tuple[int, str], Any] = {}
    written: set[int] = set()
    for row in rows:
        if row["bucket"] is not None:
            counted[(row["req"], row["bucket"])] = row
        elif row["written"]:
            written.add(row["req"])
    results = []
    for req, item in enumerate(items):
        usages = []
        for limit in item.limits:
            row = counted[(req, limit.bucket)]
            # A window opened by a transaction that started after ours (and committed while
            # we waited on its lock) ends up to a few ms more than window_s after our now().
            reset_s = min(float(row["reset_s"]), float(limit.window_s))
            if row["allowed"]:
                usages.append(Usage(limit, True, int(row["count"]), reset_s))
            else:
                usages.append(Usage(limit, False, limit.quota, reset_s))
        results.append(Outcome(usages, req in written))
    return results


class JobAcceptor:
    """Rate-limit hits and job writes, group-committed (the rate limiter of `Gateway` too)."""

    def __init__(self, pool: PgPool, *, max_batch: int = 256, max_in_flight: int = 2) -> None:
        self._pool = pool
        self._batcher: MicroBatcher[Item, Outcome] = MicroBatcher(
            self.run, max_size=max_batch, max_in_flight=max_in_flight
        )

    async def run(self, items: Sequence[Item]) -> list[Outcome]:
        """These items in one statement (one transaction), in order."""
        async with self._pool.connection() as conn:
            rows = await conn.fetch(_BATCH, *batch_args(items))
        return outcomes(items, rows)

    async def submit(self, item: Item) -> Outcome:
        """The item's outcome, once the micro-batch it joined has committed."""
        return await self._batcher.submit(item)

    async def hit(self, limits: Sequence[Limit]) -> list[Usage]:
        """Count one request against every limit. It is admitted when every usage is
        `allowed` (its bucket had room); otherwise nothing stays counted."""
        if not limits:
            return []
        return (await self.submit(Item(limits=limits))).usages

    async def accept(
        self,
        job: NewJob,
        event: Envelope[Any],
        *,
        idempotency: tuple[str, str, int, dict[str, Any]] | None = None,
        limits: Sequence[Limit] = (),
    ) -> Outcome:
        """Write the job and its event (and the key with its answer: (key, request hash,
        status, body)) — with `limits`, only if the request is admitted by them, counted in
        the same transaction. Not written, with nothing written, when the app already has
        that key."""
        return await self.submit(Item(limits, JobWrite.of(job, event, idempotency)))
