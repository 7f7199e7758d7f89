"""LISTEN for `pg_notify` wake-ups so new work is sent at once, not at the next poll.

NOTIFY is delivered when the inserting transaction commits, on every replica. The listener
reconnects after a failure; the dispatcher's poll still covers any gap.
"""

import asyncio
import logging
from collections.abc import Callable

import asyncpg

log = logging.getLogger(__name__)


async def listen_forever(dsn: str, channel: str, on_notify: Callable[[], None]) -> None:
    plain = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
    while True:
        try:
            conn = await asyncpg.connect(plain, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN connection failed (%s); polling meanwhile", type(exc).__name__)
            await asyncio.sleep(2.0)
            continue
        try:
            await conn.add_listener(channel, lambda *_: on_notify())
            on_notify()  # catch up on anything committed while not listening
            while not conn.is_closed():
                await asyncio.sleep(5.0)
        finally:
            if not conn.is_closed():
                await conn.close()
