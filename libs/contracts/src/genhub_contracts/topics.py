"""Kafka topic names (DESIGN.md).

Job topics are keyed by job id so one job's events stay ordered; the others by app id.
"""

from typing import Final

JOB_REQUESTED: Final = "job.requested"
TOKENS_RESERVED: Final = "tokens.reserved"
TOKENS_REJECTED: Final = "tokens.rejected"
JOB_STARTED: Final = "job.started"
JOB_GENERATED: Final = "job.generated"
JOB_COMPLETED: Final = "job.completed"
TOKENS_SETTLED: Final = "tokens.settled"
JOB_CANCEL_REQUESTED: Final = "job.cancel.requested"

BUDGET_EXCEEDED: Final = "budget.exceeded"
TOKENS_LOW_BALANCE: Final = "tokens.low_balance"
PROVIDER_HEALTH_CHANGED: Final = "provider.health_changed"

JOB_TOPICS: Final = (
    JOB_REQUESTED,
    TOKENS_RESERVED,
    TOKENS_REJECTED,
    JOB_STARTED,
    JOB_GENERATED,
    JOB_COMPLETED,
    TOKENS_SETTLED,
    JOB_CANCEL_REQUESTED,
)
APP_TOPICS: Final = (BUDGET_EXCEEDED, TOKENS_LOW_BALANCE, PROVIDER_HEALTH_CHANGED)
ALL_TOPICS: Final = JOB_TOPICS + APP_TOPICS


def dlq(topic: str) -> str:
    """Dead-letter topic for poison messages of `topic`."""
    return f"{topic}.dlq"


ALL_TOPICS_WITH_DLQ: Final = ALL_TOPICS + tuple(dlq(t) for t in ALL_TOPICS)
