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


class JobTotals(_Model):
    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)
    tokens_charged: int = 0


class UserBalance(_Model):
    user_id: str
    balance: int
    reserved: int
    available: int
    free_quota_left: int | None = None
    free_quota_per_day: int | None = None
    jobs: JobTotals | None = None  # in `get_user` answers (from the job read-model)


class Upload(_Model):
    key: str
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    expires_at: datetime | None = None


class Model(_Model):
    name: str
    enabled: bool = True
    max_outputs: int | None = None
    display_name: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    tokens_per_output: int | None = None


class GrantResult(_Model):
    user_id: str
    transfer_id: str | None = None
    balance: int | None = None
    available: int | None = None


class AuditEntry(_Model):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    app_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    request_id: str | None = None


class AuditPage(_Model):
    entries: list[AuditEntry] = Field(default_factory=list)
    next_cursor: str | None = None


class Key(_Model):
    id: str
    prefix: str = ""
    revoked_at: datetime | None = None


class App(_Model):
    id: str
    name: str
    slug: str
    plan: str
    enabled: bool
    webhook_url: str | None = None
    welcome_grant: int = 0
    rate_limit_per_minute: int | None = None
    user_rate_limit_per_minute: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    keys: list[Key] = Field(default_factory=list)


class CreatedApp(_Model):
    app: App
    api_key: str
    key: Key | None = None
    webhook_secret: str


class CreatedKey(_Model):
    api_key: str
    key: Key
