"""The accept path's database work, group-committed: rate-limit hits and job writes of
concurrent requests go to PostgreSQL together, as ONE statement (one round trip, one
transaction, one commit) per micro-batch (adapters/batcher.py).

An item is a request's rate-limit hit (its buckets), its job write (the read-model row, its
`job.requested` outbox row and, with an Idempotency-Key, the key's record with the answer), or
both. First, each bucket the replica holds leased units of (domain/leases.py) spends one of
them instead of being counted again. The statement then:

1. counts the batch's requests against their other buckets in request order with
   `gateway_rate_limit_leases()` (migration 0009): exactly the single-request semantics, so
   limits stay exact across replicas (the buckets are locked until the batch commits); then
   the first request of the batch on a large bucket may be leased extra units to hold;
2. inserts the keys of the writes whose request was admitted, `ON CONFLICT DO NOTHING`, in
   (app, key) order: a key the app already used is not written, and neither is its job;
3. inserts the jobs whose key was written (or that have none) and their outbox rows.

A write answered "not written" takes the slow path (replay, 422 mismatch, 409 in flight, or
taking over an expired key). A concurrent batch with the same key waits on the key's unique
index until this one commits and then finds the key recorded. A request is answered only
after its batch committed; when a batch fails (say a deadlock between replicas), its leased
units are given back and each item is run again on its own, so a failure reaches only its
cause. A request refused by one bucket gives back the leased unit it spent on another.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from genhub_contracts import Envelope
from opentelemetry import propagate

from genhub_gateway.adapters.batcher import MicroBatcher
from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.domain import leases
from genhub_gateway.domain.jobs import NewJob
from genhub_gateway.domain.leases import Leases, Release, Spent
from genhub_gateway.domain.ratelimit import Limit, Usage

log = logging.getLogger(__name__)

_BATCH = """
    WITH rl AS MATERIALIZED (
        SELECT * FROM gateway_rate_limit_leases(
            $1::int[], $2::text[], $3::int[], $4::int[], $5::int[], $6::int
        )
    ),
    w AS MATERIALIZED (
        SELECT * FROM unnest(
            $7::int[], $8::uuid[], $9::uuid[], $10::text[], $11::text[], $12::text[],
            $13::int[], $14::text[], $15::text[], $16::text[], $17::bytea[], $18::bytea[],
            $19::text[], $20::text[], $21::text[], $22::int[], $23::text[]
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
    SELECT rl.req, rl.bucket, rl.allowed, rl.count, rl.reset_s, rl.leased, rl.leased_from,
           rl.window_started, NULL::boolean AS written
    FROM rl
    UNION ALL
    SELECT w.req, NULL, NULL, NULL, NULL, NULL, NULL, NULL, j.job_id IS NOT NULL
    FROM w LEFT JOIN j ON j.job_id = w.job_id
"""

# Unused leased units go back to their window (if it is still the store's current one). The
# rows are locked in bucket order, as the accept statement locks them, so the two never
# deadlock.
_RELEASE = """
    WITH r AS (
        SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[]) AS r(bucket, start, units)
    ),
    locked AS (
        SELECT c.bucket FROM rate_limit_counters AS c JOIN r ON r.bucket = c.bucket
        WHERE c.window_start = r.start
        ORDER BY c.bucket
        FOR UPDATE OF c
    )
    UPDATE rate_limit_counters AS c SET count = greatest(0, c.count - r.units)
    FROM r
    WHERE c.bucket = r.bucket AND c.window_start = r.start
      AND c.bucket IN (SELECT bucket FROM locked)
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


@dataclass(frozen=True)
class Counted:
    """A limit of a request that the store counts (no leased unit covered it)."""

    index: int  # its position in the request's limits
    limit: Limit
    extra: int  # the extra units its grant may carry


@dataclass(frozen=True)
class Planned:
    """A request as the statement sees it: what leases covered, what the store counts."""

    item: Item
    leased: dict[int, Spent]  # position in the item's limits -> the unit a lease covered it with
    counted: list[Counted]


def plan(items: Sequence[Item], held: Leases, now: float) -> list[Planned]:
    """Spend held units where there are some; the rest the store counts, and one row per
    bucket (its first in the batch) asks for extra units, which the store leases once the
    whole batch is counted."""
    asked: set[str] = set()
    planned = []
    for item in items:
        leased: dict[int, Spent] = {}
        counted = []
        for index, limit in enumerate(item.limits):
            spent = held.take(limit, now)
            if spent is not None:
                leased[index] = spent
                continue
            extra = 0 if limit.bucket in asked else leases.extra_wanted(limit)
            asked.add(limit.bucket)
            counted.append(Counted(index, limit, extra))
        planned.append(Planned(item, leased, counted))
    return planned


def give_back(planned: Sequence[Planned], held: Leases) -> None:
    for request in planned:
        for spent in request.leased.values():
            held.give_back(spent)


def batch_args(planned: Sequence[Planned]) -> list[Any]:
    """The statement's parameters: the counted limits (each request's in bucket order, the
    lock order everywhere) with the extra units they may take and the lease share, then the
    writes, each row tagged with its request's index."""
    columns: list[list[Any]] = [[] for _ in range(22)]
    for req, request in enumerate(planned):
        for counted in sorted(request.counted, key=lambda c: c.limit.bucket):
            limit = counted.limit
            values = (req, limit.bucket, limit.window_s, limit.quota, counted.extra)
            for column, value in zip(columns[:5], values, strict=True):
                column.append(value)
        w = request.item.write
        if w is not None:
            key, request_hash, status, body = w.idempotency or (None, None, None, None)
            values = (
                req, w.job_id, w.app_id, w.user_id, w.model, w.status, w.priority, w.spec,
                w.metadata, w.topic, w.key, w.payload, w.headers, key, request_hash, status, body,
            )  # fmt: skip
            for column, value in zip(columns[5:], values, strict=True):
                column.append(value)
    return [*columns[:5], leases.SHARE, *columns[5:]]


def outcomes(
    planned: Sequence[Planned], rows: Sequence[Any], held: Leases, sent_at: float
) -> list[Outcome]:
    """Each request's outcome from the statement's rows (req, bucket, allowed, count, reset_s,
    leased, leased_from, window_started, written); units leased are kept in `held`, the held
    units a refused request spent given back."""
    by_bucket: dict[tuple[int, str], Any] = {}
    written: set[int] = set()
    for row in rows:
        if row["bucket"] is not None:
            by_bucket[(row["req"], row["bucket"])] = row
        elif row["written"]:
            written.add(row["req"])
    results = []
    for req, request in enumerate(planned):
        usages = {index: spent.usage for index, spent in request.leased.items()}
        for counted in request.counted:
            limit = counted.limit
            row = by_bucket[(req, limit.bucket)]
            # A window opened by a transaction that started after ours (and committed while
            # we waited on its lock) ends up to a few ms more than window_s after our now().
            reset_s = min(float(row["reset_s"]), float(limit.window_s))
            if row["allowed"]:
                usage = Usage(limit, True, int(row["count"]), reset_s)
                usages[counted.index] = usage
                if row["leased"]:
                    held.grant(
                        usage, row["leased"], row["leased_from"], row["window_started"], sent_at
                    )
            else:
                usages[counted.index] = Usage(limit, False, limit.quota, reset_s)
        outcome = Outcome([usages[i] for i in range(len(request.item.limits))], req in written)
        if not outcome.admitted:
            give_back([request], held)
        results.append(outcome)
    return results


class JobAcceptor:
    """Rate-limit hits and job writes, group-committed (the rate limiter of `Gateway` too)."""

    def __init__(self, pool: PgPool, *, max_batch: int = 256, max_in_flight: int = 2) -> None:
        self._pool = pool
        self._leases = Leases()
        self._batcher: MicroBatcher[Item, Outcome] = MicroBatcher(
            self.run, max_size=max_batch, max_in_flight=max_in_flight
        )

    async def run(self, items: Sequence[Item]) -> list[Outcome]:
        """These items in one statement (one transaction), in order."""
        sent_at = time.monotonic()  # no later than the statement's now(): leases end early
        planned = plan(items, self._leases, sent_at)
        try:
            async with self._pool.connection() as conn:
                rows = await conn.fetch(_BATCH, *batch_args(planned))
        except Exception:
            give_back(planned, self._leases)  # rolled back: nothing was counted or written
            raise
        return outcomes(planned, rows, self._leases, sent_at)

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

    def held(self, bucket: str) -> int:
        """Units of the bucket this replica holds unused."""
        return self._leases.held(bucket)

    async def release(self, releases: Sequence[Release]) -> None:
        """Give unused leased units back to the store."""
        if not releases:
            return
        async with self._pool.connection() as conn:
            await conn.execute(
                _RELEASE,
                [r.bucket for r in releases],
                [r.window_start for r in releases],
                [r.units for r in releases],
            )

    async def release_idle(self, now: float | None = None) -> None:
        """Give back the units left unused for `leases.IDLE_S`."""
        await self.release(self._leases.idle(time.monotonic() if now is None else now))

    async def return_idle_leases_forever(self) -> None:
        """Background loop: give idle units back every `leases.IDLE_S` (a failed give-back
        only leaves them counted until their window ends)."""
        while True:
            await asyncio.sleep(leases.IDLE_S)
            try:
                await self.release_idle()
            except Exception:
                log.warning("could not give idle rate-limit units back", exc_info=True)

    async def stop(self) -> None:
        """Give back every unit held (the replica is stopping; before the pool closes)."""
        try:
            await self.release(self._leases.release_all())
        except Exception:  # the database may be gone too; the units lapse with their window
            log.warning("could not give leased rate-limit units back", exc_info=True)
