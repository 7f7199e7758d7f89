"""FastAPI dependency aliases shared by every service's HTTP handlers."""

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from genhub_platform.uow import UnitOfWork

if TYPE_CHECKING:
    from genhub_platform.runtime import Runtime


def get_runtime(request: Request) -> "Runtime":
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    async with get_runtime(request).uow() as uow:
        yield uow


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
UowDep = Annotated[UnitOfWork, Depends(get_uow)]
