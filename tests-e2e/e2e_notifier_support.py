"""Notifier e2e helpers: publish contract events straight to Kafka, a scriptable receiver, and
the notifier's internal API (no gateway in the path, so these tests exercise the notifier alone
over real Kafka, PostgreSQL and HTTP)."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from e2e_receiver import ReceivedWebhook, WebhookReceiver
from genhub_contracts import (
    ErrorCode,
    ErrorInfo,
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    TokensSettled,
)
from genhub_contracts.envelope import Envelope
from genhub_contracts.events import (
    JobCompletedPayload,
    JobRequestedPayload,
    TokensSettledPayload,
)
from starlette.requests import Request
from starlette.responses import Response

Script = Callable[[Request, int], Awaitable[Response]]
# Billing really consumes the test's job.requested and rejects it (no funds for this app),
# so endpoints leave job.rejected out unless a test asks for it.
TEST_TYPES = ["job.failed", "job.cancelled", "job.succeeded", "endpoint.disabled"]


@dataclass
class Arrival:
    at: float  # time.monotonic() on receipt
    hook: ReceivedWebhook


@dataclass
class ScriptedReceiver(WebhookReceiver):
    """A real loopback server whose answer per request comes from `script(request, n)` (n = how
    many requests this path saw before); records arrival times."""

    script: Script | None = None
    arrivals: list[Arrival] = field(default_factory=list)

    async def _handle(self, request: Request) -> Response:
        hook = ReceivedWebhook(request.url.path, dict(request.headers), await request.body())
        seen = sum(1 for a in self.arrivals if a.hook.path == hook.path)
        self.arrivals.append(Arrival(time.monotonic(), hook))
        self.received.append(hook)
        if self.script is None:
            return Response(status_code=200)
        return await self.script(request, seen)

    def on(self, path: str) -> list[Arrival]:
        return [a for a in self.arrivals if a.hook.path == path]

    async def wait_on(self, path: str, count: int, timeout: float = 30.0) -> list[Arrival]:
        deadline = time.monotonic() + timeout
        while len(self.on(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: expected {count} webhooks, got {len(self.on(path))}")
            await asyncio.sleep(0.05)
        return self.on(path)


class Publisher:
    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")

    async def __aenter__(self) -> "Publisher":
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(self, event: Envelope[Any]) -> None:
        await self._producer.send_and_wait(
            event.TOPIC, event.model_dump_json().encode(), key=event.key
        )

    async def finished_job(
        self,
        app_id: uuid.UUID,
        status: JobStatus = JobStatus.FAILED,
        *,
        webhook_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        charged: int = 0,
    ) -> uuid.UUID:
        """job.requested, tokens.settled and job.completed of one job, as the saga sends them."""
        job = uuid.uuid4()
        spec = JobSpec(
            user_id="e2e-user",
            model="mock",
            input=GenerationInput(prompt="notifier e2e"),
            webhook_url=webhook_url,  # type: ignore[arg-type]
            metadata=metadata or {},
        )
        await self.send(
            JobRequested.new(app_id=app_id, job_id=job, payload=JobRequestedPayload(spec=spec))
        )
        await self.send(
            TokensSettled.new(
                app_id=app_id,
                job_id=job,
                payload=TokensSettledPayload(
                    user_id="e2e-user",
                    outcome="posted" if charged else "voided",
                    charged=charged,
                    refunded=0,
                    balance_after=100,
                ),
            )
        )
        error = (
            ErrorInfo(code=ErrorCode.PROVIDER_ERROR, message="e2e failure")
            if status is JobStatus.FAILED
            else None
        )
        await self.send(
            JobCompleted.new(
                app_id=app_id,
                job_id=job,
                payload=JobCompletedPayload(
                    user_id="e2e-user",
                    status=status,  # type: ignore[arg-type]
                    requested_outputs=1,
                    error=error,
                ),
            )
        )
        return job


class NotifierApi:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def endpoint(
        self, app_id: uuid.UUID, url: str, event_types: list[str] | None = None
    ) -> tuple[str, str]:
        response = await self.http.post(
            f"/internal/apps/{app_id}/endpoints",
            json={"url": url, "event_types": event_types or TEST_TYPES},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return body["endpoint"]["id"], body["secret"]

    async def deliveries(self, app_id: uuid.UUID, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(f"/internal/apps/{app_id}/deliveries", params=params)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["deliveries"]
        return found
