"""Request and response bodies of the gateway's HTTP API (they shape the OpenAPI document)."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from genhub_contracts import AppOptions, GenerationInput, JobStatus, Plan
from genhub_contracts.jobs import Watermark
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, field_validator

from genhub_gateway.domain import jsontext
from genhub_gateway.domain.identifiers import SLUG_PATTERN, USER_ID_PATTERN

MAX_METADATA_BYTES = 8 * 1024


# --- admin ------------------------------------------------------------------------------------


MAX_RATE = 1_000_000
MAX_WELCOME = 1_000_000_000


class AppOptionsPatch(BaseModel):
    """Change some of the app's job options; fields left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    cache: bool | None = None
    charge_cache_hits: bool | None = None
    enhance_prompt: bool | None = None
    watermark: Watermark | None = Field(default=None, description="null removes the watermark")
    output_retention_days: int | None = Field(default=None, ge=1, le=3650)


class CreateAppRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    slug: str = Field(pattern=SLUG_PATTERN, description="lowercase letters, digits and dashes")
    plan: Plan = Plan.FREE
    webhook_url: HttpUrl | None = None
    welcome_grant: int = Field(
        default=0, ge=0, le=MAX_WELCOME, description="tokens each new end user gets once"
    )
    rate_limit_per_minute: int | None = Field(
        default=None, ge=1, le=MAX_RATE, description="the app's requests per minute"
    )
    user_rate_limit_per_minute: int | None = Field(
        default=None, ge=1, le=MAX_RATE, description="requests per minute per end user"
    )
    options: AppOptions = Field(
        default_factory=AppOptions, description="copied into every job (spec.app)"
    )


class UpdateAppRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    plan: Plan | None = None
    enabled: bool | None = None
    webhook_url: HttpUrl | None = None
    welcome_grant: int | None = Field(default=None, ge=0, le=MAX_WELCOME)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=MAX_RATE)
    user_rate_limit_per_minute: int | None = Field(default=None, ge=1, le=MAX_RATE)
    options: AppOptionsPatch | None = None


class AppOut(BaseModel):
    id: UUID
    name: str
    slug: str
    plan: Plan
    enabled: bool
    webhook_url: str | None = None
    welcome_grant: int = 0
    rate_limit_per_minute: int
    user_rate_limit_per_minute: int
    options: AppOptions
    created_at: datetime
    updated_at: datetime | None = None


class KeyOut(BaseModel):
    id: UUID
    app_id: UUID
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedAppOut(BaseModel):
    app: AppOut
    api_key: str = Field(description="shown once; only its hash is stored")
    key: KeyOut
    webhook_secret: str = Field(description="Standard Webhooks signing secret, whsec_...")


class CreatedKeyOut(BaseModel):
    api_key: str = Field(description="shown once; only its hash is stored")
    key: KeyOut


class AppWithKeysOut(AppOut):
    keys: list[KeyOut]


class AppListOut(BaseModel):
    apps: list[AppWithKeysOut]


class CreateAdminTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")


class AdminTokenOut(BaseModel):
    id: UUID
    name: str
    prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedAdminTokenOut(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")
    admin_token: AdminTokenOut


class AdminTokenListOut(BaseModel):
    tokens: list[AdminTokenOut]


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    app_id: UUID | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: str | None


# --- public -----------------------------------------------------------------------------------


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=64, examples=["mock"])
    input: GenerationInput
    webhook_url: HttpUrl | None = Field(
        default=None, description="overrides the app's webhook URL for this job"
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="echoed back in the job and its webhook (≤ 8 KiB)"
    )
    priority: int = Field(default=5, ge=0, le=9)
    cache: bool = Field(
        default=True, description="false: do not answer this request from the result cache"
    )
    enhance_prompt: bool | None = Field(
        default=None, description="rewrite the prompt before generating; null: the app's default"
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        if jsontext.compact_length(value) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
        return value


class JobAccepted(BaseModel):
    job_id: UUID
    status: JobStatus


class JobOutputOut(BaseModel):
    index: int
    url: str | None = Field(description="presigned, short-lived; fetch a fresh one via GET job")
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None


class JobErrorOut(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class JobTokensOut(BaseModel):
    """Tokens held for the job, then charged or refunded when billing settles (0 until then)."""

    reserved: int = 0
    charged: int = 0
    refunded: int = 0


class JobOut(BaseModel):
    job_id: UUID
    status: JobStatus
    model: str
    user_id: str
    created_at: datetime
    updated_at: datetime
    outputs: list[JobOutputOut]
    error: JobErrorOut | None
    tokens: JobTokensOut
    provider: str | None
    attempts: int
    metadata: dict[str, Any]


class JobPageOut(BaseModel):
    jobs: list[JobOut] = Field(
        description="newest first; outputs carry no `url` here (null): fetch the job for fresh "
        "presigned URLs"
    )
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class UserBalanceOut(BaseModel):
    user_id: str
    balance: int
    reserved: int
    available: int


class JobTotalsOut(BaseModel):
    """From the gateway's read-model: the user's jobs by status, and tokens charged."""

    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)
    tokens_charged: int = 0


class UserOut(UserBalanceOut):
    free_quota_left: int | None = Field(default=None, description="free generations left today")
    free_quota_per_day: int | None = None
    jobs: JobTotalsOut = Field(default_factory=JobTotalsOut)


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=1_000_000_000)
    reason: str = Field(min_length=1, max_length=200)


class GrantOut(UserBalanceOut):
    transfer_id: str | None = None


class ModelOut(BaseModel):
    name: str
    enabled: bool
    max_outputs: int | None
    display_name: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    max_input_images: int | None = None
    aspect_ratios: list[str] = Field(default_factory=list)
    tokens_per_output: int | None = Field(
        default=None, description="this app's price per output image (standard quality)"
    )


class BatchGrantItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(pattern=USER_ID_PATTERN)
    amount: int = Field(gt=0, le=1_000_000_000)
    reason: str = Field(min_length=1, max_length=200)
    expires_at: datetime | None = None


class BatchGrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grants: list[BatchGrantItem] = Field(min_length=1, max_length=1000)


class BatchGrantResultOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    user_id: str
    transfer_id: str | None = None
    balance: int | None = None
    available: int | None = None


class BatchGrantOut(BaseModel):
    results: list[BatchGrantResultOut]


class UploadOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    key: str = Field(description="use it in input.images of POST /v1/generate")
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    expires_at: datetime | None = None


class WebhookEndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = Field(default=None, description="null: every event type")
    enabled: bool = True


class WebhookEndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl | None = None
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = None
    enabled: bool | None = None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="ISO 8601 with an offset")
    status: Literal["failed"] = "failed"
    endpoint_id: UUID | None = None


class ModelListOut(BaseModel):
    models: list[ModelOut]
