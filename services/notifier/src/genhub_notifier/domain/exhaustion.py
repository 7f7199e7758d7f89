"""Dead letters the app hears about: a delivery whose every scheduled attempt failed becomes
`dead_lettered`, and a `delivery.exhausted` message goes to the app's other enabled endpoints
that accept that type (never to the endpoint that failed, never for a `delivery.exhausted`
delivery itself, so announcements cannot chain into a loop).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from genhub_notifier.domain.body import iso8601
from genhub_notifier.domain.delivery import WebhookEventType, exhausted_message_id


@dataclass(frozen=True)
class Exhaustion:
    """A delivery that has just run out of attempts."""

    delivery_id: str
    webhook_id: str  # the failed delivery's message id (its `webhook-id` header)
    app_id: UUID
    endpoint_id: UUID | None  # None: the job's own webhook_url
    url: str
    event_type: WebhookEventType
    job_id: UUID | None
    attempts: int
    last_error: str | None
    at: datetime

    @property
    def announced(self) -> bool:
        """An exhausted `delivery.exhausted` delivery is only dead-lettered, not announced."""
        return self.event_type is not WebhookEventType.DELIVERY_EXHAUSTED

    @property
    def message_id(self) -> str:
        return exhausted_message_id(self.delivery_id, self.attempts)

    def data(self) -> dict[str, Any]:
        """The `data` of the `delivery.exhausted` body."""
        return {
            "delivery_id": self.delivery_id,
            "webhook_id": self.webhook_id,
            "endpoint_id": str(self.endpoint_id) if self.endpoint_id is not None else None,
            "url": self.url,
            "event_type": self.event_type.value,
            "job_id": str(self.job_id) if self.job_id is not None else None,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "exhausted_at": iso8601(self.at),
        }
