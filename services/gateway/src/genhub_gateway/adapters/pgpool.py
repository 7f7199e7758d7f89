"""A plain asyncpg pool for the accept path's two statements (rate limit, accept).

The ORM engine (genhub_platform.db) pings every connection it checks out and builds each
statement through SQLAlchemy; on the hot path that costs more CPU and round trips than the
statements themselves. asyncpg's own pool resets connections it gets back and prepares each
statement once per connection.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


async def _keep_session(_: asyncpg.Connection) -> None:
    """Nothing to reset: these connections only run single autocommit statements and never
    change session state, so asyncpg's default reset (a round trip per release) is skipped."""


class PgPool:
    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        # SQLAlchemy URLs name the driver ("postgresql+asyncpg://"); asyncpg wants plain.
        self._dsn = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._max_size, reset=_keep_session
                    )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = await self._get()
        async with pool.acquire() as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
