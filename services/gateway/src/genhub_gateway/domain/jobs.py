"""A job as accepted, before it is written: plain data (building the ORM row costs more than
the whole insert on the hot path)."""

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4


@dataclass(frozen=True)
class NewJob:
    app_id: UUID
    user_id: str
    model: str
    status: str
    priority: int
    spec_json: str  # the spec as JSON text, serialized once for the row and kept as is
    metadata: dict[str, Any]
    job_id: UUID = field(default_factory=uuid4)
