"""Every event of the job saga and the app-keyed signals, one class each (DESIGN.md)."""

from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from genhub_contracts import topics
from genhub_contracts.enums import JobStatus, RejectReason
from genhub_contracts.envelope import Envelope
from genhub_contracts.jobs import ErrorInfo, JobSpec, OutputFile, StagedOutput

# --- payloads ---------------------------------------------------------------------------------


class JobRequestedPayload(BaseModel):
    spec: JobSpec


class TokensReservedPayload(BaseModel):
    spec: JobSpec
    hold_id: UUID
    amount: int = Field(ge=0, description="tokens held for this job")
    free_quota_used: bool = False


class TokensRejectedPayload(BaseModel):
    user_id: str
    reason: RejectReason
    message: str
    balance: int | None = None
    required: int | None = None


class JobStartedPayload(BaseModel):
    user_id: str
    provider: str
    attempt: int = 1
    enhanced_prompt: str | None = None


class JobGeneratedPayload(BaseModel):
    user_id: str
    provider: str
    model: str
    requested_outputs: int = Field(ge=1)
    output_format: str
    staged: list[StagedOutput]
    attempts: int = 1
    cache_hit: bool = Field(default=False, description="staged keys are a cached job's outputs")
    provider_cost_usd: str = Field(default="0", description="decimal string, for app budgets")


class JobCompletedPayload(BaseModel):
    user_id: str
    status: Literal[JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    requested_outputs: int = Field(ge=1)
    outputs: list[OutputFile] = Field(default_factory=list)
    error: ErrorInfo | None = None
    provider: str | None = None
    attempts: int = 0
    cache_hit: bool = False
    provider_cost_usd: str = "0"


class TokensSettledPayload(BaseModel):
    user_id: str
    outcome: Literal["posted", "voided"]
    charged: int = Field(ge=0)
    refunded: int = Field(ge=0)
    balance_after: int


class JobCancelRequestedPayload(BaseModel):
    user_id: str
    reason: str = "requested by app"


class BudgetExceededPayload(BaseModel):
    level: Literal["soft", "hard"]
    spent_usd: str
    budget_usd: str
    period: str


class LowBalancePayload(BaseModel):
    user_id: str
    balance: int
    threshold: int


class ProviderHealthChangedPayload(BaseModel):
    provider: str
    health: Literal["healthy", "degraded", "down"]
    previous: Literal["healthy", "degraded", "down"]


# --- events -----------------------------------------------------------------------------------


class JobRequested(Envelope[JobRequestedPayload]):
    TOPIC: ClassVar[str] = topics.JOB_REQUESTED
    TYPE: ClassVar[str] = "job.requested"


class TokensReserved(Envelope[TokensReservedPayload]):
    TOPIC: ClassVar[str] = topics.TOKENS_RESERVED
    TYPE: ClassVar[str] = "tokens.reserved"


class TokensRejected(Envelope[TokensRejectedPayload]):
    TOPIC: ClassVar[str] = topics.TOKENS_REJECTED
    TYPE: ClassVar[str] = "tokens.rejected"


class JobStarted(Envelope[JobStartedPayload]):
    TOPIC: ClassVar[str] = topics.JOB_STARTED
    TYPE: ClassVar[str] = "job.started"


class JobGenerated(Envelope[JobGeneratedPayload]):
    TOPIC: ClassVar[str] = topics.JOB_GENERATED
    TYPE: ClassVar[str] = "job.generated"


class JobCompleted(Envelope[JobCompletedPayload]):
    TOPIC: ClassVar[str] = topics.JOB_COMPLETED
    TYPE: ClassVar[str] = "job.completed"


class TokensSettled(Envelope[TokensSettledPayload]):
    TOPIC: ClassVar[str] = topics.TOKENS_SETTLED
    TYPE: ClassVar[str] = "tokens.settled"


class JobCancelRequested(Envelope[JobCancelRequestedPayload]):
    TOPIC: ClassVar[str] = topics.JOB_CANCEL_REQUESTED
    TYPE: ClassVar[str] = "job.cancel.requested"


class BudgetExceeded(Envelope[BudgetExceededPayload]):
    TOPIC: ClassVar[str] = topics.BUDGET_EXCEEDED
    TYPE: ClassVar[str] = "budget.exceeded"


class LowBalance(Envelope[LowBalancePayload]):
    TOPIC: ClassVar[str] = topics.TOKENS_LOW_BALANCE
    TYPE: ClassVar[str] = "tokens.low_balance"


class ProviderHealthChanged(Envelope[ProviderHealthChangedPayload]):
    TOPIC: ClassVar[str] = topics.PROVIDER_HEALTH_CHANGED
    TYPE: ClassVar[str] = "provider.health_changed"


EVENT_TYPES: dict[str, type[Envelope[Any]]] = {
    cls.TYPE: cls
    for cls in (
        JobRequested,
        TokensReserved,
        TokensRejected,
        JobStarted,
        JobGenerated,
        JobCompleted,
        TokensSettled,
        JobCancelRequested,
        BudgetExceeded,
        LowBalance,
        ProviderHealthChanged,
    )
}


def parse_event(raw: bytes | str | dict[str, Any]) -> Envelope[Any]:
    """Decode any event by its `type` field. Raises ValueError for unknown types."""
    import json

    data = json.loads(raw) if isinstance(raw, bytes | str) else raw
    event_type = data.get("type")
    cls = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        raise ValueError(f"unknown event type: {event_type!r}")
    return cls.model_validate(data)
