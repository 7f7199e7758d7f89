"""The outbox relay on the accept path's asyncpg pool.

The platform's relay (genhub_platform.outbox.OutboxRelay) loads each batch as ORM objects
through SQLAlchemy; at the gateway's rate (one `job.requested` per accepted job, batches of a
few rows as the relay is woken after each accept) building those objects costs about as much
CPU as accepting the jobs. This relay keeps the platform's loop, wake-up and clean-up and the
same protocol — claim a batch with `FOR UPDATE SKIP LOCKED` in id order, send it without
waiting, wait for the acks, mark the rows published, commit — with plain rows and two
prepared statements.
"""

import asyncio
import json
from typing import Any

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
    ) -> None:
        super().__init__(
            session_factory, publisher, batch_size=batch_size, poll_interval_s=poll_interval_s
        )
        self._pool = pool
        self._publisher_ = publisher
        self._batch = batch_size

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it published."""
        async with self._pool.connection() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch)
            if not rows:
                return 0
            pending: list[asyncio.Future[Any]] = [
                await self._publisher_.send(
                    row["topic"], row["payload"], row["key"], json.loads(row["headers"])
                )
                for row in rows
            ]
            await asyncio.gather(*pending)
            await conn.execute(_MARK, [row["id"] for row in rows])
        return len(rows)
