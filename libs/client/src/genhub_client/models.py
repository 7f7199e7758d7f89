"""Typed views of the API's answers. Unknown fields are ignored, so newer servers stay
compatible with older clients."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "rejected"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class JobOutput(_Model):
    index: int
    url: str | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None


class JobError(_Model):
    code: str
    message: str = ""


class JobTokens(_Model):
    reserved: int = 0
    charged: int = 0
    refunded: int = 0


class Job(_Model):
    job_id: str
    status: str
    model: str | None = None
    user_id: str | None = None
    outputs: list[JobOutput] = Field(default_factory=list)
    error: JobError | None = None
    tokens: JobTokens | None = None
    provider: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class JobPage(_Model):
    """One page of `list_jobs`: outputs carry no URL (use `get_job` for fresh ones)."""

    jobs: list[Job] = Field(default_factory=list)
    next_cursor: str | None = None


class UserBalance(_Model):
    user_id: str
    balance: int
    reserved: int
    available: int


class App(_Model):
    id: str
    name: str
    slug: str
    plan: str
    enabled: bool


class CreatedApp(_Model):
    app: App
    api_key: str
    webhook_secret: str
