"""Background loops: the hold sweeper voids reservations whose job never settled in time."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from genhub_platform.runtime import Runtime

from genhub_billing import services
from genhub_billing.config import Settings

log = logging.getLogger(__name__)


def hold_sweeper(runtime: Runtime, settings: Settings) -> Callable[[], Awaitable[None]]:
    async def sweep_expired_holds() -> None:
        while True:
            async with runtime.uow() as uow:
                voided = await services.expire_holds(uow, limit=settings.hold_sweep_batch)
                await uow.commit()
            if voided:
                log.info("voided %d expired holds", voided)
            if voided < settings.hold_sweep_batch:  # a full batch: more may be waiting
                await asyncio.sleep(settings.hold_sweep_interval_s)

    return sweep_expired_holds
