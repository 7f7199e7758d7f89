"""Transactional outbox: events are rows written in the same transaction as the state change.

A relay publishes unpublished rows to Kafka and marks them. Several replicas can run the relay at
once: each claims a batch with `FOR UPDATE SKIP LOCKED`, so a row is published by one of them
(at least once: a crash after the send and before the commit publishes it again, which the
consumers' inbox de-duplication absorbs).

Hot path without ORM objects: `UnitOfWork.publish` keeps the row values and inserts them with
one Core executemany when the session commits (`pending_rows`/`insert_pending`), and the relay
claims and marks its batch with two Core statements on plain rows.
"""

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from genhub_contracts import Envelope
from opentelemetry import propagate
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    delete,
    event,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel, col

from genhub_platform import db
from genhub_platform.aio import wait_event
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
        return cls(**outbox_row(event))


def outbox_row(event: Envelope[Any]) -> dict[str, Any]:
    """The outbox columns for an event (what `OutboxMessage.from_event` holds)."""
    # Capture the trace context now: the relay publishes later, outside this request's span.
    headers: dict[str, str] = {}
    propagate.inject(headers)
    headers["event-type"] = event.type
    return {
        "topic": event.TOPIC,
        "key": event.key,
        "payload": event.model_dump_json().encode(),
        "headers": headers,
    }


_PENDING = "genhub.outbox.pending"
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_INSERT = insert(_OUTBOX)


def pending_rows(session: Session) -> list[dict[str, Any]]:
    """Outbox rows queued on this session: inserted (one executemany) when it commits."""
    rows: list[dict[str, Any]] | None = session.info.get(_PENDING)
    if rows is None:
        if not session.in_transaction():
            session.begin()  # no I/O: a rollback from here on drops the queued rows
        rows = session.info[_PENDING] = []
    return rows


@event.listens_for(Session, "before_commit")
def insert_pending(session: Session) -> None:
    """Write the queued outbox rows inside the committing transaction, however it commits."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.execute(_INSERT, rows)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if session.in_transaction():  # a savepoint rolled back: the outer transaction goes on
        return
    session.info.pop(_PENDING, None)


# Straight to asyncpg (db.Statement): the relay runs a pass per committed batch of every
# producer, so SQLAlchemy's per-statement work was a visible share of a busy service's CPU.
_CLAIM = db.Statement(
    "SELECT id, topic, key, payload, headers FROM outbox WHERE published_at IS NULL"
    " ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK = db.Statement(
    "UPDATE outbox SET published_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"
)


def _headers(value: Any) -> dict[str, str]:
    """JSONB as the driver returns it for a textual query (a str, or already decoded)."""
    decoded = json.loads(value) if isinstance(value, str | bytes) else value
    return dict(decoded or {})


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
            # Cleared before the pass, not after: a commit that wakes the relay while a pass
            # is running must get a pass of its own at once, not wait out the poll interval.
            self._wakeup.clear()
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
                await wait_event(self._wakeup, self._poll_interval_s)

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it published."""
        async with self._sessions() as session, session.begin():
            rows = await _CLAIM.fetch(session, limit=self._batch_size)
            if not rows:
                return 0
            pending = [
                await self._publisher.send(topic, payload, key, _headers(headers))
                for _, topic, key, payload, headers in rows
            ]
            await asyncio.gather(*pending)
            await _MARK.execute(session, ids=[row[0] for row in rows])
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
