"""Background loops: the hold sweeper voids reservations whose job never settled in time, the
lot sweeper expires grants, the plan scheduler allocates each month's plan tokens."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_billing import services, sweeps
from genhub_billing.config import Settings

log = logging.getLogger(__name__)

Step = Callable[[UnitOfWork, int], Awaitable[int]]


def _loop(
    runtime: Runtime, what: str, step: Step, batch: int, interval_s: float
) -> Callable[[], Awaitable[None]]:
    """Run `step` in its own unit of work until it does less than a full batch, then sleep."""

    async def run_forever() -> None:
        while True:
            async with runtime.uow() as uow:
                done = await step(uow, batch)
                await uow.commit()
            if done:
                log.info("%s: %d", what, done)
            if done < batch:  # a full batch: more may be waiting
                await asyncio.sleep(interval_s)

    run_forever.__qualname__ = f"sweep[{what}]"
    return run_forever


async def _expire_holds(uow: UnitOfWork, limit: int) -> int:
    return await services.expire_holds(uow, limit=limit)


async def _expire_lots(uow: UnitOfWork, limit: int) -> int:
    return await sweeps.expire_lots(uow, limit=limit)


async def _allocate(uow: UnitOfWork, limit: int) -> int:
    return (await sweeps.allocate_plans(uow, limit=limit)).users


def hold_sweeper(runtime: Runtime, settings: Settings) -> Callable[[], Awaitable[None]]:
    return _loop(
        runtime, "expired holds voided", _expire_holds, settings.hold_sweep_batch,
        settings.hold_sweep_interval_s,
    )  # fmt: skip


def lot_sweeper(runtime: Runtime, settings: Settings) -> Callable[[], Awaitable[None]]:
    return _loop(
        runtime, "grant expiries written", _expire_lots, settings.sweep_batch,
        settings.lot_sweep_interval_s,
    )  # fmt: skip


def plan_scheduler(runtime: Runtime, settings: Settings) -> Callable[[], Awaitable[None]]:
    return _loop(
        runtime, "users allocated their plan", _allocate, settings.sweep_batch,
        settings.plan_interval_s,
    )  # fmt: skip
