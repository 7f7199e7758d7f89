"""Inbox de-duplication: a consumer records each event id it applied, in the same transaction.

Kafka delivers at least once; recording `(consumer, event_id)` with the state change makes a
second delivery a no-op.
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Field, SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_events"

    consumer: str = Field(primary_key=True, max_length=128)
    event_id: UUID = Field(primary_key=True)
    processed_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


async def record_first_delivery(session: AsyncSession, consumer: str, event_id: UUID) -> bool:
    """Record the event as processed; False when this consumer has already processed it."""
    result = await session.exec(
        insert(ProcessedEvent)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing()
        .returning(col(ProcessedEvent.event_id))
    )
    return result.first() is not None
