"""genhub's shared contracts: the event envelope, every event schema, topic names and enums.

Services import these models and never re-declare them (DESIGN.md).
"""

from genhub_contracts import topics
from genhub_contracts.enums import ErrorCode, JobStatus, OutputFormat, Plan, RejectReason
from genhub_contracts.envelope import Envelope
from genhub_contracts.events import (
    EVENT_TYPES,
    BudgetExceeded,
    JobCancelRequested,
    JobCompleted,
    JobGenerated,
    JobRequested,
    JobStarted,
    LowBalance,
    ProviderHealthChanged,
    TokensRejected,
    TokensReserved,
    TokensSettled,
    parse_event,
)
from genhub_contracts.jobs import (
    AppOptions,
    ErrorInfo,
    GenerationInput,
    JobSpec,
    OutputFile,
    StagedOutput,
    Watermark,
)

__all__ = [
    "EVENT_TYPES",
    "AppOptions",
    "BudgetExceeded",
    "Envelope",
    "ErrorCode",
    "ErrorInfo",
    "GenerationInput",
    "JobCancelRequested",
    "JobCompleted",
    "JobGenerated",
    "JobRequested",
    "JobSpec",
    "JobStarted",
    "JobStatus",
    "LowBalance",
    "OutputFile",
    "OutputFormat",
    "Plan",
    "ProviderHealthChanged",
    "RejectReason",
    "StagedOutput",
    "TokensRejected",
    "TokensReserved",
    "TokensSettled",
    "Watermark",
    "parse_event",
    "topics",
]
