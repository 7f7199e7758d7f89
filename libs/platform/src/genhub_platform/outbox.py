"""Transactional outbox: events are rows written in the same transaction as the state change.

A relay publishes unpublished rows to Kafka and marks them. Several replicas can run the relay at
once: each claims a batch with `FOR UPDATE SKIP LOCKED`, so a row is published by one of them
(at least once: a crash after the send and before the commit publishes it again, which the
consumers' inbox de-duplication absorbs).
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from genhub_contracts import Envelope
from opentelemetry import propagate
from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, delete, func, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel, col, select

from genhub_platform.db import SessionFactory

log = logging.getLogger(__name__)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    topic: str
    key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    headers: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False))
    created_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    published_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )

    @classmethod
    def from_event(cls, event: Envelope[Any]) -> "OutboxMessage":
        # Capture the trace context now: the relay publishes later, outside this request's span.
        headers: dict[str, str] = {}
        propagate.inject(headers)
        headers["event-type"] = event.type
        return cls(
            topic=event.TOPIC,
            key=event.key,
            payload=event.model_dump_json().encode(),
            headers=headers,
        )


class Publisher(Protocol):
    """What the relay needs from a Kafka producer."""

    async def send(
        self, topic: str, payload: bytes, key: bytes, headers: dict[str, str]
    ) -> "asyncio.Future[Any]": ...


class OutboxRelay:
    """Publishes outbox rows in id order, in batches; woken at once after a local commit."""

    def __init__(
        self,
        session_factory: SessionFactory,
        publisher: Publisher,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 0.5,
        retention: timedelta = timedelta(hours=1),
    ) -> None:
        self._sessions = session_factory
        self._publisher = publisher
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._wakeup = asyncio.Event()
        self._last_cleanup = datetime.min.replace(tzinfo=UTC)

    def wake(self) -> None:
        self._wakeup.set()

    async def run_forever(self) -> None:
        while True:
            try:
                published = await self.publish_pending()
                await self._cleanup_if_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                published = 0
                await asyncio.sleep(1.0)
            if published < self._batch_size:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_interval_s)

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it published."""
        async with self._sessions() as session, session.begin():
            rows = (
                await session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.published_at).is_(None))
                    .order_by(col(OutboxMessage.id))
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            pending = [
                await self._publisher.send(row.topic, row.payload, row.key, row.headers)
                for row in rows
            ]
            await asyncio.gather(*pending)
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_([row.id for row in rows]))
                .values(published_at=func.now())
            )
        return len(rows)

    async def _cleanup_if_due(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_cleanup < timedelta(minutes=5):
            return
        self._last_cleanup = now
        async with self._sessions() as session, session.begin():
            await session.exec(
                delete(OutboxMessage).where(col(OutboxMessage.published_at) < now - self._retention)
            )
