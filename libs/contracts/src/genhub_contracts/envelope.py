"""The envelope every event carries (DESIGN.md): id, type, time, job, app, version, payload."""

from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

PayloadT = TypeVar("PayloadT", bound=BaseModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[PayloadT]):
    """Base of every event. `event_id` is the consumer's dedupe key.

    Consumers ignore unknown fields so producers can add optional fields without a
    coordinated release; a breaking change bumps `schema_version`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    TOPIC: ClassVar[str]
    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: UUID = Field(default_factory=uuid4)
    type: str
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    job_id: UUID | None = None
    app_id: UUID
    schema_version: int = 1
    payload: PayloadT

    @classmethod
    def new(cls, *, app_id: UUID, payload: PayloadT, job_id: UUID | None = None, **kw: Any) -> Self:
        """Build an event of this class with its fixed type and schema version."""
        return cls(
            type=cls.TYPE,
            schema_version=cls.SCHEMA_VERSION,
            app_id=app_id,
            job_id=job_id,
            payload=payload,
            **kw,
        )

    @property
    def key(self) -> bytes:
        """Kafka key: the job id for job events (keeps one job ordered), else the app id."""
        return str(self.job_id or self.app_id).encode()
