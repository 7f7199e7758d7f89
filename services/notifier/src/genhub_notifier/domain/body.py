"""The webhook body (docs/internal-apis.md), serialised once: the signed bytes are the sent ones.

`{"type", "timestamp", "data"}` where `data` depends on the type:
- job.*: job_id, user_id, status, model, outputs [{index, url, content_type, width, height}],
  tokens_charged, tokens_refunded, error {code, message} | null, metadata, requested_at,
  completed_at;
- tokens.low_balance: user_id, balance, threshold;
- endpoint.disabled: endpoint_id, url, reason, disabled_at;
- delivery.exhausted: delivery_id, webhook_id, endpoint_id, url, event_type, job_id, attempts,
  last_error, exhausted_at (domain.exhaustion).
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from genhub_notifier.domain.delivery import WebhookEventType


@dataclass(frozen=True)
class OutputRef:
    index: int
    url: str
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class WebhookData:
    job_id: str
    user_id: str
    model: str
    outputs: list[OutputRef] = field(default_factory=list)
    error: dict[str, str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tokens_charged: int | None = None
    tokens_refunded: int | None = None
    requested_at: str | None = None
    completed_at: str | None = None


def iso8601(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_data(event_type: WebhookEventType, data: WebhookData) -> dict[str, Any]:
    return {
        "job_id": data.job_id,
        "user_id": data.user_id,
        "status": event_type.job_status.value,
        "model": data.model,
        "outputs": [
            {
                "index": o.index,
                "url": o.url,
                "content_type": o.content_type,
                "width": o.width,
                "height": o.height,
            }
            for o in sorted(data.outputs, key=lambda o: o.index)
        ],
        "tokens_charged": data.tokens_charged,
        "tokens_refunded": data.tokens_refunded,
        "error": data.error,
        "metadata": data.metadata,
        "requested_at": data.requested_at,
        "completed_at": data.completed_at,
    }


def body_dict(
    event_type: WebhookEventType, occurred_at: datetime, data: WebhookData | dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": event_type.value,
        "timestamp": iso8601(occurred_at),
        "data": job_data(event_type, data) if isinstance(data, WebhookData) else data,
    }


def build_body(
    event_type: WebhookEventType, occurred_at: datetime, data: WebhookData | dict[str, Any]
) -> bytes:
    return json.dumps(
        body_dict(event_type, occurred_at, data), separators=(",", ":"), ensure_ascii=False
    ).encode()
