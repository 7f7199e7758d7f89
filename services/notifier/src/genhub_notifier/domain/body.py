"""The webhook body (docs/internal-apis.md), serialised once: the signed bytes are the sent ones."""

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


def iso8601(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body_dict(
    event_type: WebhookEventType, occurred_at: datetime, data: WebhookData
) -> dict[str, Any]:
    return {
        "type": event_type.value,
        "timestamp": iso8601(occurred_at),
        "data": {
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
            "error": data.error,
            "metadata": data.metadata,
        },
    }


def build_body(event_type: WebhookEventType, occurred_at: datetime, data: WebhookData) -> bytes:
    return json.dumps(
        body_dict(event_type, occurred_at, data), separators=(",", ":"), ensure_ascii=False
    ).encode()
