"""Unit of work: one transaction that covers state changes, outbox rows and inbox records."""

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from genhub_contracts import Envelope
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_platform.db import SessionFactory
from genhub_platform.inbox import record_first_delivery
from genhub_platform.outbox import outbox_row, pending_rows


class UnitOfWork:
    """`async with uow:` opens a session; `commit()` makes everything durable at once.

    Leaving the block without `commit()` rolls back: nothing is half-done.
    """

    def __init__(self, session_factory: SessionFactory, on_commit: Callable[[], None]) -> None:
        self._session_factory = session_factory
        self._on_commit = on_commit
        self._session: AsyncSession | None = None
        self._published = False

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside `async with`")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        self._published = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.session.rollback()
        finally:
            await self.session.close()
            self._session = None

    def publish(self, event: Envelope[Any]) -> None:
        """Queue an event in the outbox; it is sent only if this unit of work commits.

        The row is inserted by the commit (with every other queued row, one executemany)."""
        pending_rows(self.session.sync_session).append(outbox_row(event))
        self._published = True

    async def first_delivery(self, consumer: str, event_id: UUID) -> bool:
        """Inbox check: False when `consumer` already applied this event."""
        return await record_first_delivery(self.session, consumer, event_id)

    async def commit(self) -> None:
        await self.session.commit()
        if self._published:
            self._on_commit()
            self._published = False
