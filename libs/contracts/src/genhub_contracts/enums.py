"""Enumerations shared across services; their values are part of the public contract."""

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RESERVED = "reserved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.REJECTED}
)


class RejectReason(StrEnum):
    """Why billing refused to reserve tokens for a job."""

    INSUFFICIENT_TOKENS = "insufficient_tokens"
    QUOTA_EXCEEDED = "quota_exceeded"
    BUDGET_EXCEEDED = "budget_exceeded"
    USER_DISABLED = "user_disabled"
    UNKNOWN_MODEL = "unknown_model"


class ErrorCode(StrEnum):
    """Stable codes for jobs that end failed or cancelled."""

    ALL_PROVIDERS_FAILED = "all_providers_failed"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_TIMEOUT = "provider_timeout"
    CONTENT_REJECTED = "content_rejected"
    INVALID_INPUT = "invalid_input"
    INVALID_OUTPUT = "invalid_output"
    NO_ROUTE = "no_route"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class OutputFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    PDF = "pdf"


class Plan(StrEnum):
    FREE = "free"
    BASIC = "basic"
    PRO = "pro"
    ENTERPRISE = "enterprise"
