"""The outbox relay on the accept path's asyncpg pool.

The platform's relay (genhub_platform.outbox.OutboxRelay) loads each batch as ORM objects
through SQLAlchemy; at the gateway's rate (one `job.requested` per accepted job, batches of a
few rows as the relay is woken after each accept) building those objects costs about as much
CPU as accepting the jobs. This relay keeps the platform's loop, wake-up and clean-up and the
same protocol — claim a batch with `FOR UPDATE SKIP LOCKED` in id order, send it without
waiting, wait for the acks, mark the rows published, commit — with plain rows and two
prepared statements.

Under load it lingers: when the previous pass published a few rows (jobs are arriving) but
fewer than `linger_below`, the next pass waits `linger_s` before claiming, so the rows of the
accepts meanwhile go in the same pass. Each pass costs a transaction with two statements, a
Kafka produce request and its acks whatever its size; woken after each group-committed accept
batch, the relay otherwise ran a pass for every handful of jobs. After an idle spell the first
rows go at once (nothing was published just before); while jobs keep arriving their
`job.requested` leave at most `linger_s` later.
"""

import asyncio
from typing import Any

import orjson
from genhub_platform.db import SessionFactory
from genhub_platform.outbox import OutboxRelay, Publisher

from genhub_gateway.adapters.pgpool import PgPool

_CLAIM = (
    "SELECT id, topic, key, payload, headers FROM outbox WHERE published_at IS NULL"
    " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)
_MARK = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])"


class PgOutboxRelay(OutboxRelay):
    def __init__(
        self,
        pool: PgPool,
        session_factory: SessionFactory,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        linger_s: float = 0.005,
        linger_below: int = 100,
    ) -> None:
        super().__init__(
            session_factory, publisher, batch_size=batch_size, poll_interval_s=poll_interval_s
        )
        self._pool = pool
        self._publisher_ = publisher
        self._batch = batch_size
        self._linger_s = linger_s
        self._linger_below = linger_below
        self._last_published = 0

    async def publish_pending(self) -> int:
        """Publish one batch (after the linger, under load); returns how many rows."""
        if 0 < self._last_published < self._linger_below:
            await asyncio.sleep(self._linger_s)
        self._last_published = await self._publish_batch()
        return self._last_published

    async def _publish_batch(self) -> int:
        async with self._pool.connection() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch)
            if not rows:
                return 0
            pending: list[asyncio.Future[Any]] = [
                await self._publisher_.send(
                    row["topic"], row["payload"], row["key"], orjson.loads(row["headers"])
                )
                for row in rows
            ]
            await asyncio.gather(*pending)
            await conn.execute(_MARK, [row["id"] for row in rows])
        return len(rows)
