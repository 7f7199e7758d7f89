"""Use cases, dispatcher and HTTP routes against the real local PostgreSQL (genhub_notifier_test).

Webhook receivers: httpx MockTransport for most cases, and one real http.server on 127.0.0.1.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.server
import ipaddress
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from genhub_contracts import (
    ErrorCode,
    ErrorInfo,
    GenerationInput,
    JobCompleted,
    JobRequested,
    JobSpec,
    JobStatus,
    LowBalance,
    RejectReason,
    TokensRejected,
    TokensSettled,
)
from genhub_contracts.events import (
    JobCompletedPayload,
    JobRequestedPayload,
    LowBalancePayload,
    TokensRejectedPayload,
    TokensSettledPayload,
)
from genhub_notifier.adapters.http11 import Http11Sender
from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.adapters.storage_client import StorageClient
from genhub_notifier.adapters.tables import Message, SigningSecret
from genhub_notifier.adapters.webhook_sender import EXCERPT_BYTES, Sender, WebhookSender
from genhub_notifier.domain.delivery import WebhookEventType, job_message_id
from genhub_notifier.domain.retry import RetrySchedule
from genhub_notifier.handlers.http import router
from genhub_notifier.services import deliveries
from genhub_notifier.services.dispatcher import DispatchConfig, Dispatcher
from genhub_notifier.services.endpoints import EndpointService
from genhub_notifier.services.events import EventRecorder
from genhub_notifier.services.fanout import FanoutConfig
from genhub_notifier.services.secrets import create_signing_secret
from genhub_platform.db import SessionFactory, make_session_factory
from genhub_platform.errors import install_error_handlers
from genhub_platform.migrations import upgrade_to_head
from genhub_platform.netguard.guard import UrlGuard
from genhub_platform.uow import UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import select

DSN = os.environ.get(
    "NOTIFIER_TEST_DATABASE_URL", "postgresql://genhub:genhub@127.0.0.1:5432/genhub_notifier_test"
)
ASYNC_URL = DSN.replace("postgresql://", "postgresql+asyncpg://", 1)
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
PUBLIC_IP = "93.184.216.34"
BOX = SecretBox([SecretBox.generate_key()])
T0 = datetime(2024, 11, 21, 12, 0, tzinfo=UTC)
# Most tests do not care about billing's tokens.settled: no wait for it.
FANOUT = FanoutConfig(settlement_wait=timedelta(0))


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def migrated_db() -> str:
    """Fresh schema from the real migrations (alembic runs its own loop: use a thread)."""
    errors: list[BaseException] = []

    def reset() -> None:
        async def drop() -> None:
            conn = await asyncpg.connect(DSN, timeout=5)
            try:
                await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            finally:
                await conn.close()

        try:
            asyncio.run(drop())
            upgrade_to_head(MIGRATIONS, ASYNC_URL)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=reset)
    worker.start()
    worker.join()
    if errors and isinstance(errors[0], OSError):
        pytest.fail(f"PostgreSQL not reachable for notifier DB tests: {errors[0]}")
    if errors:
        raise errors[0]
    return ASYNC_URL


@pytest.fixture(scope="session")
async def engine(migrated_db: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(migrated_db, pool_size=20, max_overflow=20)
    yield eng
    await eng.dispose()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> SessionFactory:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE delivery_attempts, deliveries, messages, endpoints, job_subscriptions,"
                " job_settlements, signing_secrets, processed_events, outbox"
            )
        )
    return make_session_factory(engine)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Receiver:
    """Records every webhook request; answers with `respond` (sync or async)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.respond: Handler = lambda request: httpx.Response(204)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        result = self.respond(request)
        return await result if not isinstance(result, httpx.Response) else result


def storage_files(request: httpx.Request) -> httpx.Response:
    parts = request.url.path.split("/")  # /internal/apps/{app}/jobs/{job}/files
    app_id, job_id = parts[3], parts[5]
    files = [
        {
            "index": i,
            "key": f"outputs/{app_id}/{job_id}/{i}.png",
            "url": f"http://minio.test/outputs/{job_id}/{i}.png?X-Amz-Signature=fresh",
            "content_type": "image/png",
            "width": 512,
            "height": 512,
            "bytes": 100,
            "sha256": "ab" * 32,
            "expires_at": "2024-11-21T13:00:00Z",
        }
        for i in range(2)
    ]
    return httpx.Response(200, json={"files": files})


def make_dispatcher(
    sessions: SessionFactory,
    clock: Callable[[], datetime],
    receiver: Receiver | None = None,
    *,
    resolver_answer: list[str] | None = None,
    storage: Handler = storage_files,
    schedule: str = "0,5,30",
    allow_private: bool = False,
    real_network: bool = False,
    max_in_flight: int = 32,
    per_endpoint: int = 4,
    fanout: FanoutConfig = FANOUT,
    disable_after: timedelta = timedelta(days=5),
    poll_s: float = 0.5,
) -> Dispatcher:
    answer = resolver_answer or [PUBLIC_IP]

    async def resolver(host: str, port: int) -> list[str]:
        return answer

    guard = (
        UrlGuard(allow_private=allow_private, require_https=False)
        if real_network
        else UrlGuard(allow_private=allow_private, require_https=False, resolver=resolver)
    )
    # Scripted receivers go through httpx's MockTransport; real sockets through the service's
    # own HTTP/1.1 client.
    sender: Sender = (
        Http11Sender(timeout_s=5)
        if real_network
        else WebhookSender(timeout_s=5, transport=httpx.MockTransport(receiver or Receiver()))
    )
    storage_client = StorageClient(
        "http://storage.test",
        client=httpx.AsyncClient(
            base_url="http://storage.test", transport=httpx.MockTransport(storage)
        ),
    )
    return Dispatcher(
        sessions,
        config=DispatchConfig(
            schedule=RetrySchedule.parse(schedule),
            max_in_flight=max_in_flight,
            max_in_flight_per_endpoint=per_endpoint,
            lease=timedelta(seconds=60),
            poll_s=poll_s,
            fanout=fanout,
            disable_after=disable_after,
        ),
        guard=guard,
        sender=sender,
        storage=storage_client,
        secrets=BOX,
        clock=clock,
        rand=lambda: 0.5,  # no jitter: exact retry times
    )


# --- helpers ------------------------------------------------------------------------------------


def uow_for(sessions: SessionFactory) -> UnitOfWork:
    return UnitOfWork(sessions, on_commit=lambda: None)


async def new_secret(sessions: SessionFactory, app_id: uuid.UUID) -> str:
    async with uow_for(sessions) as uow:
        return await create_signing_secret(uow, BOX, app_id, rotate=False)


def requested(
    app_id: uuid.UUID,
    job_id: uuid.UUID,
    url: str | None = "https://hooks.example.com/genhub",
    metadata: dict[str, Any] | None = None,
) -> JobRequested:
    spec = JobSpec(
        user_id="user-1",
        model="mock",
        input=GenerationInput(prompt="a cat"),
        webhook_url=url,  # type: ignore[arg-type]
        metadata=metadata or {"order": 42},
    )
    return JobRequested.new(app_id=app_id, job_id=job_id, payload=JobRequestedPayload(spec=spec))


def completed(
    app_id: uuid.UUID, job_id: uuid.UUID, status: JobStatus = JobStatus.SUCCEEDED
) -> JobCompleted:
    error = (
        None
        if status is JobStatus.SUCCEEDED
        else ErrorInfo(code=ErrorCode.PROVIDER_ERROR, message="provider said no")
    )
    return JobCompleted.new(
        app_id=app_id,
        job_id=job_id,
        payload=JobCompletedPayload(
            user_id="user-1",
            status=status,
            requested_outputs=2,
            error=error,  # type: ignore[arg-type]
        ),
        occurred_at=T0,
    )


async def apply(
    sessions: SessionFactory, event: Any, now: datetime = T0, fanout: FanoutConfig = FANOUT
) -> None:
    recorder = EventRecorder(fanout)
    handler = {
        JobRequested: recorder.remember_job,
        JobCompleted: recorder.record_completion,
        TokensRejected: recorder.record_rejection,
        TokensSettled: recorder.remember_settlement,
        LowBalance: recorder.record_low_balance,
    }[type(event)]
    async with uow_for(sessions) as uow:
        await handler(uow, event, now)
        await uow.commit()


async def log_for(
    sessions: SessionFactory, app_id: uuid.UUID, job_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    async with uow_for(sessions) as uow:
        page = await deliveries.delivery_log(uow, app_id, job_id=job_id, limit=200)
        return list(page["deliveries"])


async def message_statuses(
    sessions: SessionFactory, app_id: uuid.UUID, job_id: uuid.UUID | None = None
) -> list[str]:
    async with sessions() as session:
        query = select(Message).where(Message.app_id == app_id)
        if job_id is not None:
            query = query.where(Message.job_id == job_id)
        return [m.status for m in (await session.exec(query)).all()]


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """An app's verification, written from the spec (not with the service's helper)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(sig.split(",", 1)[1], expected)
        for sig in headers["webhook-signature"].split(" ")
        if sig.startswith("v1,")
    )


# --- the happy path -----------------------------------------------------------------------------


async def test_succeeded_job_is_delivered_signed_with_fresh_output_urls(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    secret = await new_secret(sessions, app)
    receiver = Receiver()
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job))

    assert await make_dispatcher(sessions, clock, receiver).drain() == 1

    [request] = receiver.requests
    # Pinned to the checked address; Host keeps the name.
    assert request.url.host == PUBLIC_IP
    assert request.headers["host"] == "hooks.example.com"
    assert request.headers["webhook-id"] == job_message_id(job, WebhookEventType.SUCCEEDED)
    assert request.headers["webhook-timestamp"] == str(int(T0.timestamp()))
    assert verify(secret, request.headers, request.content)
    body = json.loads(request.content)
    assert body["type"] == "job.succeeded"
    assert body["timestamp"] == "2024-11-21T12:00:00Z"
    data = body["data"]
    assert data["job_id"] == str(job) and data["user_id"] == "user-1"
    assert data["status"] == "succeeded" and data["model"] == "mock"
    assert data["metadata"] == {"order": 42} and data["error"] is None
    assert [o["url"] for o in data["outputs"]] == [
        f"http://minio.test/outputs/{job}/{i}.png?X-Amz-Signature=fresh" for i in range(2)
    ]

    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "delivered" and entry["attempt_count"] == 1
    assert entry["delivered_at"] is not None
    [attempt] = entry["attempts"]
    assert attempt["status_code"] == 204 and attempt["error"] is None


async def test_failed_and_cancelled_jobs_get_their_types_and_errors(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()
    storage_called: list[str] = []

    def storage(request: httpx.Request) -> httpx.Response:
        storage_called.append(str(request.url))
        return httpx.Response(500)

    for status in (JobStatus.FAILED, JobStatus.CANCELLED):
        job = uuid.uuid4()
        await apply(sessions, requested(app, job))
        await apply(sessions, completed(app, job, status))
    await make_dispatcher(sessions, clock, receiver, storage=storage).drain()

    bodies = sorted((json.loads(r.content) for r in receiver.requests), key=lambda b: b["type"])
    assert [b["type"] for b in bodies] == ["job.cancelled", "job.failed"]
    for body in bodies:
        assert body["data"]["outputs"] == []
        assert body["data"]["error"] == {"code": "provider_error", "message": "provider said no"}
    assert storage_called == []  # no outputs to look up for unsuccessful jobs


async def test_rejected_job_is_delivered_with_the_reason_as_error_code(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    secret = await new_secret(sessions, app)
    receiver = Receiver()
    await apply(sessions, requested(app, job))
    await apply(
        sessions,
        TokensRejected.new(
            app_id=app,
            job_id=job,
            payload=TokensRejectedPayload(
                user_id="user-1", reason=RejectReason.INSUFFICIENT_TOKENS, message="needs 10 tokens"
            ),
        ),
    )
    await make_dispatcher(sessions, clock, receiver).drain()

    [request] = receiver.requests
    assert verify(secret, request.headers, request.content)
    body = json.loads(request.content)
    assert body["type"] == "job.rejected"
    assert body["data"]["status"] == "rejected"
    assert body["data"]["error"] == {"code": "insufficient_tokens", "message": "needs 10 tokens"}


# --- idempotency and ordering -------------------------------------------------------------------


async def test_a_replayed_event_never_creates_a_second_delivery(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()
    await apply(sessions, requested(app, job))
    await apply(sessions, requested(app, job))  # JobRequested replay: still one subscription
    first = completed(app, job)
    await apply(sessions, first)
    await make_dispatcher(sessions, clock, receiver).drain()
    # Same event again, and a re-publication with a new event id: both absorbed.
    await apply(sessions, first)
    await apply(sessions, completed(app, job))
    await make_dispatcher(sessions, clock, receiver).drain()

    assert len(receiver.requests) == 1
    assert len(await log_for(sessions, app, job)) == 1


async def test_completion_before_request_waits_for_the_subscription(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    secret = await new_secret(sessions, app)
    receiver = Receiver()
    dispatcher = make_dispatcher(sessions, clock, receiver)

    await apply(sessions, completed(app, job))
    await dispatcher.drain()
    assert await log_for(sessions, app, job) == []
    assert await message_statuses(sessions, app, job) == ["waiting"]
    assert receiver.requests == []

    clock.advance(1)
    await apply(sessions, requested(app, job, metadata={"late": True}), now=clock.now)
    await dispatcher.drain()  # woken at once, not after the recheck interval

    [request] = receiver.requests
    assert verify(secret, request.headers, request.content)
    assert json.loads(request.content)["data"]["metadata"] == {"late": True}
    assert (await log_for(sessions, app, job))[0]["status"] == "delivered"


async def test_waiting_for_a_subscription_is_bounded(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    receiver = Receiver()
    dispatcher = make_dispatcher(sessions, clock, receiver)
    await apply(sessions, completed(app, job))
    for _ in range(3):
        await dispatcher.drain()
        clock.advance(6 * 60)  # past the 5 s recheck each time; 18 min > 15 min bound
    await dispatcher.drain()

    assert await log_for(sessions, app, job) == []
    assert await message_statuses(sessions, app, job) == ["no_endpoint"]
    assert receiver.requests == []


async def test_job_without_webhook_url_has_no_endpoint(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    receiver = Receiver()
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job))
    await make_dispatcher(sessions, clock, receiver).drain()
    assert await log_for(sessions, app, job) == []
    assert await message_statuses(sessions, app, job) == ["no_endpoint"]
    assert receiver.requests == []


# --- retries ------------------------------------------------------------------------------------


async def test_failures_retry_on_schedule_with_the_same_id_then_die(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    secret = await new_secret(sessions, app)
    receiver = Receiver()
    receiver.respond = lambda request: httpx.Response(500, content=b"x" * 5000)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0,5,30")
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job))

    await dispatcher.drain()
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "pending"
    assert entry["next_attempt_at"] == (T0 + timedelta(seconds=5)).isoformat()

    clock.advance(4)
    assert await dispatcher.drain() == 0  # not due yet
    clock.advance(1)
    assert await dispatcher.drain() == 1
    clock.advance(30)
    assert await dispatcher.drain() == 1
    clock.advance(3600)
    assert await dispatcher.drain() == 0  # dead: never again

    assert len(receiver.requests) == 3
    assert {r.headers["webhook-id"] for r in receiver.requests} == {
        job_message_id(job, WebhookEventType.SUCCEEDED)
    }
    assert [r.headers["webhook-timestamp"] for r in receiver.requests] == [
        str(int((T0 + timedelta(seconds=s)).timestamp())) for s in (0, 5, 35)
    ]
    assert all(verify(secret, r.headers, r.content) for r in receiver.requests)
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "dead_lettered" and entry["attempt_count"] == 3
    assert entry["last_error"] == "retries_exhausted: endpoint answered 500"
    assert [a["attempt"] for a in entry["attempts"]] == [1, 2, 3]
    for attempt in entry["attempts"]:
        assert attempt["status_code"] == 500
        assert len(attempt["response_excerpt"]) == EXCERPT_BYTES
        assert attempt["error"] == "endpoint answered 500"


async def test_a_retry_that_succeeds_is_delivered(sessions: SessionFactory, clock: Clock) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()
    answers = iter(
        [
            httpx.Response(503),
            httpx.Response(302, headers={"location": "http://10.0.0.1/"}),
            httpx.Response(200, text="ok"),
        ]
    )
    receiver.respond = lambda request: next(answers)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0,5,30,60")
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job))
    for step in (0, 5, 30):
        clock.advance(step)
        await dispatcher.drain()

    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "delivered"
    # A redirect is not followed (it could point anywhere) and counts as a failure.
    assert [a["status_code"] for a in entry["attempts"]] == [503, 302, 200]
    assert len(receiver.requests) == 3


async def test_410_gone_stops_the_delivery_at_once(sessions: SessionFactory, clock: Clock) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()
    receiver.respond = lambda request: httpx.Response(410, text="gone")
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0,5,30")
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job))

    assert await dispatcher.drain() == 1
    for _ in range(3):
        clock.advance(3600)
        assert await dispatcher.drain() == 0  # never retried

    assert len(receiver.requests) == 1
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "failed" and entry["next_attempt_at"] is None
    assert entry["attempt_count"] == 1
    assert entry["last_error"] == "endpoint_gone: endpoint answered 410"
    [attempt] = entry["attempts"]
    assert attempt["status_code"] == 410 and attempt["error"] == entry["last_error"]


async def test_429_with_retry_after_is_retried_when_the_endpoint_asks(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()
    answers = iter(
        [
            httpx.Response(429, headers={"retry-after": "120"}),  # later than the 5 s schedule
            httpx.Response(503, headers={"retry-after": "Thu, 21 Nov 2024 12:12:00 GMT"}),
            httpx.Response(204),
        ]
    )
    receiver.respond = lambda request: next(answers)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0,5,30")
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job))

    await dispatcher.drain()
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "pending"
    assert entry["next_attempt_at"] == (T0 + timedelta(seconds=120)).isoformat()
    assert entry["last_error"] == "endpoint answered 429, Retry-After 120"

    clock.advance(5)
    assert await dispatcher.drain() == 0  # the schedule's 5 s is not enough: wait as asked
    clock.advance(114)
    assert await dispatcher.drain() == 0
    clock.advance(1)
    assert await dispatcher.drain() == 1  # at T0 + 120 s; the 503 asks for 12:12:00 (HTTP-date)
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "pending"
    assert entry["next_attempt_at"] == datetime(2024, 11, 21, 12, 12, tzinfo=UTC).isoformat()

    clock.now = datetime(2024, 11, 21, 12, 12, tzinfo=UTC)
    assert await dispatcher.drain() == 1
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "delivered"
    assert [a["status_code"] for a in entry["attempts"]] == [429, 503, 204]
    assert len(receiver.requests) == 3


async def test_storage_outage_is_a_retryable_attempt_without_a_post(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job))
    await make_dispatcher(
        sessions, clock, receiver, storage=lambda request: httpx.Response(503)
    ).drain()

    assert receiver.requests == []
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "pending"
    assert entry["attempts"][0]["error"] == "storage answered 503"


async def test_missing_signing_secret_is_retried_not_sent_unsigned(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    receiver = Receiver()
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await make_dispatcher(sessions, clock, receiver).drain()
    assert receiver.requests == []
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "pending" and entry["last_error"] == "no signing secret for this app"


async def test_private_address_is_refused_and_dead_without_a_request(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()
    await apply(sessions, requested(app, job, url="http://rebind.example.com/h"))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await make_dispatcher(sessions, clock, receiver, resolver_answer=["169.254.169.254"]).drain()
    assert receiver.requests == []
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "failed"
    assert entry["last_error"].startswith("url_refused: address_refused")


# --- concurrency --------------------------------------------------------------------------------


async def test_a_slow_endpoint_does_not_block_the_others(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    await new_secret(sessions, app)
    fast_jobs = 5
    fast_seen = asyncio.Event()
    seen: list[str] = []

    async def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            # Answers only once every fast delivery has arrived: serial sending would time out.
            await asyncio.wait_for(fast_seen.wait(), timeout=5)
        else:
            seen.append(request.url.path)
            if len(seen) == fast_jobs:
                fast_seen.set()
        return httpx.Response(200)

    receiver = Receiver()
    receiver.respond = respond
    slow = uuid.uuid4()
    await apply(sessions, requested(app, slow, url="https://hooks.example.com/slow"))
    await apply(sessions, completed(app, slow, JobStatus.FAILED), now=T0 - timedelta(seconds=1))
    for _ in range(fast_jobs):
        job = uuid.uuid4()
        await apply(sessions, requested(app, job, url="https://hooks.example.com/fast"))
        await apply(sessions, completed(app, job, JobStatus.FAILED))

    await make_dispatcher(sessions, clock, receiver).drain()
    statuses = [e["status"] for e in await log_for(sessions, app)]
    assert statuses == ["delivered"] * (fast_jobs + 1)


async def test_two_replicas_never_send_the_same_due_delivery_twice(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    await new_secret(sessions, app)
    receiver = Receiver()

    async def respond(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200)

    receiver.respond = respond
    for _ in range(20):
        job = uuid.uuid4()
        await apply(sessions, requested(app, job))
        await apply(sessions, completed(app, job, JobStatus.CANCELLED))

    a = make_dispatcher(sessions, clock, receiver, max_in_flight=4)
    b = make_dispatcher(sessions, clock, receiver, max_in_flight=4)
    handled = await asyncio.gather(a.drain(), b.drain())

    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert sum(handled) == 20 and len(ids) == 20 and len(set(ids)) == 20


async def test_an_expired_lease_lets_another_replica_take_over(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    # A replica leases the row and dies before finishing.
    async with sessions() as session, session.begin():
        from genhub_notifier.adapters import repository as repo

        assert (
            len(
                await repo.claim_due(
                    session,
                    T0,
                    10,
                    T0 + timedelta(seconds=60),
                    uuid.uuid4(),
                    per_target={},
                    target_limit=4,
                )
            )
            == 1
        )

    receiver = Receiver()
    survivor = make_dispatcher(sessions, clock, receiver)
    assert await survivor.drain() == 0
    clock.advance(61)
    assert await survivor.drain() == 1
    assert len(receiver.requests) == 1


# --- tenancy ------------------------------------------------------------------------------------


async def test_another_tenants_event_never_uses_this_tenants_subscription(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, intruder, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    await new_secret(sessions, intruder)
    receiver = Receiver()
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(intruder, job, JobStatus.FAILED))
    await make_dispatcher(sessions, clock, receiver).drain()

    assert receiver.requests == []
    assert await log_for(sessions, app) == []
    assert await log_for(sessions, intruder) == []
    assert await message_statuses(sessions, intruder) == ["waiting"]


# --- a real receiver over the network -----------------------------------------------------------


class _Capture(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Capture.received.append(({k.lower(): v for k, v in self.headers.items()}, body, self.path))
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()
        self.wfile.write(b"thanks")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def real_receiver() -> Iterator[int]:
    _Capture.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_real_receiver_on_localhost_gets_a_verifiable_webhook(
    sessions: SessionFactory, clock: Clock, real_receiver: int
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    secret = await new_secret(sessions, app)
    url = f"http://localhost:{real_receiver}/hooks/genhub?tenant=1"
    await apply(sessions, requested(app, job, url=url))
    await apply(sessions, completed(app, job))

    await make_dispatcher(sessions, clock, real_network=True, allow_private=True).drain()

    [(headers, body, path)] = _Capture.received
    assert path == "/hooks/genhub?tenant=1"
    assert headers["host"] == f"localhost:{real_receiver}"
    assert headers["content-type"] == "application/json"
    assert verify(secret, headers, body)
    assert json.loads(body)["data"]["job_id"] == str(job)
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "delivered"
    assert entry["attempts"][0]["response_excerpt"] == "thanks"


async def test_real_receiver_is_refused_when_private_webhooks_are_not_allowed(
    sessions: SessionFactory, clock: Clock, real_receiver: int
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    await apply(sessions, requested(app, job, url=f"http://localhost:{real_receiver}/h"))
    await apply(sessions, completed(app, job))
    await make_dispatcher(sessions, clock, real_network=True, allow_private=False).drain()
    assert _Capture.received == []
    assert (await log_for(sessions, app, job))[0]["status"] == "failed"


# --- HTTP routes --------------------------------------------------------------------------------


GRACE = timedelta(hours=24)


async def _public_resolver(host: str, port: int) -> list[str]:
    return [PUBLIC_IP]


class _Runtime:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def uow(self) -> UnitOfWork:
        return uow_for(self._sessions)


@pytest.fixture
async def api(sessions: SessionFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.runtime = _Runtime(sessions)
    install_error_handlers(app)
    guard = UrlGuard(allow_private=False, require_https=False, resolver=_public_resolver)
    app.include_router(router(BOX, EndpointService(BOX, guard, GRACE), GRACE))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://n"
    ) as client:
        yield client


async def test_signing_secret_is_created_once_then_rotated(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    app = uuid.uuid4()
    created = await api.post(f"/internal/apps/{app}/signing-secret")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24

    again = await api.post(f"/internal/apps/{app}/signing-secret")
    assert again.status_code == 409 and again.json()["error"]["code"] == "secret_exists"

    rotated = await api.post(f"/internal/apps/{app}/signing-secret", params={"rotate": "true"})
    assert rotated.status_code == 201 and rotated.json()["secret"] != secret

    async with sessions() as session:
        [row] = (await session.exec(select(SigningSecret))).all()
    assert rotated.json()["secret"] not in row.secret_encrypted  # encrypted at rest
    assert BOX.decrypt(row.secret_encrypted) == rotated.json()["secret"]
    assert row.rotated_at is not None


async def test_bad_ids_are_a_4xx_with_a_code(api: httpx.AsyncClient) -> None:
    for response in (
        await api.post("/internal/apps/not-a-uuid/signing-secret"),
        await api.get(f"/internal/apps/{uuid.uuid4()}/deliveries", params={"job_id": "nope"}),
        await api.get(f"/internal/apps/{uuid.uuid4()}/deliveries", params={"limit": 0}),
    ):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"


async def test_delivery_log_lists_attempts_filtered_by_app_and_job(
    api: httpx.AsyncClient, sessions: SessionFactory, clock: Clock
) -> None:
    app, other_app = uuid.uuid4(), uuid.uuid4()
    await api.post(f"/internal/apps/{app}/signing-secret")
    jobs = [uuid.uuid4(), uuid.uuid4()]
    for job in jobs:
        await apply(sessions, requested(app, job))
        await apply(sessions, completed(app, job, JobStatus.FAILED))
    await make_dispatcher(sessions, clock, Receiver()).drain()

    everything = (await api.get(f"/internal/apps/{app}/deliveries")).json()["deliveries"]
    assert {d["job_id"] for d in everything} == {str(j) for j in jobs}
    one = (
        await api.get(f"/internal/apps/{app}/deliveries", params={"job_id": str(jobs[0])})
    ).json()
    [entry] = one["deliveries"]
    assert entry["webhook_id"] == job_message_id(jobs[0], WebhookEventType.FAILED)
    assert entry["id"].startswith("dlv_")
    assert entry["type"] == "job.failed" and entry["status"] == "delivered"
    assert entry["url"] == "https://hooks.example.com/genhub"
    assert entry["attempts"][0]["status_code"] == 204
    assert entry["attempts"][0]["latency_ms"] >= 0
    foreign = await api.get(
        f"/internal/apps/{other_app}/deliveries", params={"job_id": str(jobs[0])}
    )
    assert foreign.json() == {"deliveries": [], "next_cursor": None}


async def test_messages_are_unique_per_job_and_type(sessions: SessionFactory) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await apply(sessions, completed(app, job))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    async with sessions() as session:
        rows = (await session.exec(select(Message).where(Message.job_id == job))).all()
    assert sorted(r.event_type for r in rows) == ["job.failed", "job.succeeded"]
    assert ipaddress.ip_address(PUBLIC_IP).is_global


async def test_undecryptable_secret_is_a_logged_retryable_attempt(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    other_box = SecretBox([SecretBox.generate_key()])
    async with uow_for(sessions) as uow:
        await create_signing_secret(uow, other_box, app, rotate=False)
    receiver = Receiver()
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await make_dispatcher(sessions, clock, receiver).drain()
    assert receiver.requests == []
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "pending" and entry["attempt_count"] == 1
    assert "cannot be decrypted" in entry["attempts"][0]["error"]


# --- endpoints ----------------------------------------------------------------------------------

ENDPOINTS = EndpointService(
    BOX, UrlGuard(allow_private=False, require_https=False, resolver=_public_resolver), GRACE
)


async def new_endpoint(
    sessions: SessionFactory,
    app_id: uuid.UUID,
    url: str = "https://hooks.example.com/ep",
    event_types: list[str] | None = None,
) -> tuple[str, str]:
    async with uow_for(sessions) as uow:
        view, secret = await ENDPOINTS.create(
            uow, app_id, url=url, description="", event_types=event_types, enabled=True
        )
    return view["id"], secret


def by_path(receiver: Receiver, path: str) -> list[httpx.Request]:
    return [r for r in receiver.requests if r.url.path == path]


def settled_event(app: uuid.UUID, job: uuid.UUID, charged: int = 20) -> TokensSettled:
    return TokensSettled.new(
        app_id=app,
        job_id=job,
        payload=TokensSettledPayload(
            user_id="user-1", outcome="posted", charged=charged, refunded=0, balance_after=80
        ),
    )


async def test_endpoint_management_api_and_tenant_isolation(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    app, other = uuid.uuid4(), uuid.uuid4()
    base = f"/internal/apps/{app}/endpoints"
    created = await api.post(
        base,
        json={
            "url": "https://hooks.example.com/a",
            "description": "orders",
            "event_types": ["job.failed", "job.succeeded"],
        },
    )
    assert created.status_code == 201
    endpoint, secret = created.json()["endpoint"], created.json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    assert endpoint["url"] == "https://hooks.example.com/a" and endpoint["enabled"] is True
    assert endpoint["event_types"] == ["job.failed", "job.succeeded"]
    assert endpoint["disabled_reason"] is None and endpoint["created_at"]
    eid = endpoint["id"]
    async with sessions() as session:
        row = (await session.exec(text("SELECT secret_encrypted FROM endpoints"))).one()  # type: ignore[call-overload]
    assert secret not in row[0] and BOX.decrypt(row[0]) == secret  # encrypted at rest

    assert [e["id"] for e in (await api.get(base)).json()["endpoints"]] == [eid]
    patched = await api.patch(f"{base}/{eid}", json={"event_types": None, "enabled": False})
    assert patched.status_code == 200
    assert patched.json()["endpoint"]["event_types"] is None
    assert patched.json()["enabled"] is False
    assert patched.json()["disabled_reason"] == "disabled_by_app"
    again = await api.patch(f"{base}/{eid}", json={"enabled": True, "description": "all"})
    assert again.json()["enabled"] is True and again.json()["disabled_reason"] is None
    assert (await api.get(f"{base}/{eid}")).json()["description"] == "all"

    # Another app sees, changes, rotates and deletes nothing of this one.
    foreign = f"/internal/apps/{other}/endpoints"
    assert (await api.get(foreign)).json() == {"endpoints": []}
    for response in (
        await api.get(f"{foreign}/{eid}"),
        await api.patch(f"{foreign}/{eid}", json={"enabled": False}),
        await api.post(f"{foreign}/{eid}/rotate-secret"),
        await api.delete(f"{foreign}/{eid}"),
    ):
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert (await api.get(f"{base}/{eid}")).json()["enabled"] is True

    assert (await api.delete(f"{base}/{eid}")).status_code == 204
    assert (await api.get(f"{base}/{eid}")).status_code == 404


async def test_bad_endpoints_are_refused_with_a_code(api: httpx.AsyncClient) -> None:
    base = f"/internal/apps/{uuid.uuid4()}/endpoints"
    for url, reason in (
        ("http://10.0.0.7/h", "address_refused"),
        ("http://169.254.169.254/latest", "address_refused"),
        ("ftp://hooks.example.com/h", None),
    ):
        response = await api.post(base, json={"url": url})
        assert response.status_code == 422, url
        assert response.json()["error"]["code"] == "url_refused"
        if reason:
            assert response.json()["error"]["details"]["reason"] == reason
    bad_types = await api.post(
        base, json={"url": "https://hooks.example.com/h", "event_types": ["job.exploded"]}
    )
    assert bad_types.status_code == 422
    assert bad_types.json()["error"]["code"] == "invalid_event_types"
    assert (await api.get(base)).json() == {"endpoints": []}


async def test_events_fan_out_to_matching_endpoints_each_signed_with_its_own_secret(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    _, all_secret = await new_endpoint(sessions, app, "https://hooks.example.com/all")
    _, fail_secret = await new_endpoint(
        sessions, app, "https://hooks.example.com/failures", ["job.failed"]
    )
    receiver = Receiver()
    failed_job, ok_job = uuid.uuid4(), uuid.uuid4()
    for job, status in ((failed_job, JobStatus.FAILED), (ok_job, JobStatus.SUCCEEDED)):
        await apply(sessions, requested(app, job, url=None))
        await apply(sessions, completed(app, job, status))
    await make_dispatcher(sessions, clock, receiver).drain()

    all_hooks, failure_hooks = (
        by_path(receiver, "/all"),
        by_path(receiver, "/failures"),
    )
    assert sorted(json.loads(r.content)["type"] for r in all_hooks) == [
        "job.failed",
        "job.succeeded",
    ]
    [failure] = failure_hooks
    assert json.loads(failure.content)["type"] == "job.failed"
    assert all(verify(all_secret, r.headers, r.content) for r in all_hooks)
    assert verify(fail_secret, failure.headers, failure.content)
    assert not verify(all_secret, failure.headers, failure.content)
    # One message, one webhook-id, whatever the endpoint.
    [same] = [r for r in all_hooks if json.loads(r.content)["type"] == "job.failed"]
    assert same.headers["webhook-id"] == failure.headers["webhook-id"]
    assert same.headers["webhook-id"] == job_message_id(failed_job, WebhookEventType.FAILED)
    entries = await log_for(sessions, app)
    assert len(entries) == 3 and {e["status"] for e in entries} == {"delivered"}
    assert all(e["endpoint_id"] for e in entries)


async def test_a_jobs_own_url_overrides_the_apps_endpoints(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    app_secret = await new_secret(sessions, app)
    await new_endpoint(sessions, app, "https://hooks.example.com/ep")
    receiver = Receiver()
    await apply(sessions, requested(app, job, url="https://job.example.com/mine"))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await make_dispatcher(sessions, clock, receiver).drain()
    [request] = receiver.requests
    assert request.headers["host"] == "job.example.com"
    assert verify(app_secret, request.headers, request.content)
    [entry] = await log_for(sessions, app)
    assert entry["endpoint_id"] is None and entry["url"] == "https://job.example.com/mine"


async def test_tokens_charged_come_from_tokens_settled_which_the_message_waits_for(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    await new_endpoint(sessions, app)
    waiting = FanoutConfig(settlement_wait=timedelta(seconds=30))
    receiver = Receiver()
    dispatcher = make_dispatcher(sessions, clock, receiver, fanout=waiting)
    late, early, never = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for job in (late, early, never):
        await apply(sessions, requested(app, job, url=None), fanout=waiting)
    await apply(sessions, settled_event(app, early, charged=7), fanout=waiting)
    for job in (late, early, never):
        await apply(sessions, completed(app, job), fanout=waiting)
    await dispatcher.drain()
    assert [json.loads(r.content)["data"]["job_id"] for r in receiver.requests] == [str(early)]
    assert await message_statuses(sessions, app, late) == ["waiting"]

    clock.advance(2)
    await apply(sessions, settled_event(app, late, charged=20), now=clock.now, fanout=waiting)
    await dispatcher.drain()  # woken by the settlement, not by the recheck
    clock.advance(30)
    await dispatcher.drain()  # `never` stops waiting for billing after 30 s
    charged = {
        json.loads(r.content)["data"]["job_id"]: json.loads(r.content)["data"]["tokens_charged"]
        for r in receiver.requests
    }
    assert charged == {str(early): 7, str(late): 20, str(never): None}
    body = json.loads(receiver.requests[0].content)["data"]
    assert body["requested_at"] and body["completed_at"] == "2024-11-21T12:00:00Z"
    assert body["metadata"] == {"order": 42} and body["tokens_refunded"] == 0


async def test_low_balance_goes_to_endpoints_that_want_it(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    _, secret = await new_endpoint(
        sessions, app, "https://hooks.example.com/low", ["tokens.low_balance"]
    )
    await new_endpoint(sessions, app, "https://hooks.example.com/jobs", ["job.succeeded"])
    receiver = Receiver()
    event = LowBalance.new(
        app_id=app, payload=LowBalancePayload(user_id="user-9", balance=3, threshold=10)
    )
    await apply(sessions, event)
    await apply(sessions, event)  # a redelivered event is one message
    await make_dispatcher(sessions, clock, receiver).drain()
    [request] = receiver.requests
    assert request.url.path == "/low" and verify(secret, request.headers, request.content)
    body = json.loads(request.content)
    assert body["type"] == "tokens.low_balance"
    assert body["data"] == {"user_id": "user-9", "balance": 3, "threshold": 10}


async def test_410_disables_the_endpoint_and_tells_the_apps_other_endpoints(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    gone_id, _ = await new_endpoint(sessions, app, "https://hooks.example.com/gone")
    await new_endpoint(sessions, app, "https://hooks.example.com/ok")
    receiver = Receiver()
    receiver.respond = lambda r: httpx.Response(410 if r.url.path == "/gone" else 200)
    dispatcher = make_dispatcher(sessions, clock, receiver)
    job = uuid.uuid4()
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await dispatcher.drain()

    ok_types = [json.loads(r.content)["type"] for r in by_path(receiver, "/ok")]
    assert ok_types == ["job.failed", "endpoint.disabled"]
    notice = json.loads(by_path(receiver, "/ok")[1].content)["data"]
    assert notice["endpoint_id"] == gone_id and notice["reason"] == "endpoint_gone"
    assert len(by_path(receiver, "/gone")) == 1
    async with uow_for(sessions) as uow:
        view = await ENDPOINTS.get(uow, app, uuid.UUID(gone_id))
    assert view["enabled"] is False and view["disabled_reason"] == "endpoint_gone"

    later = uuid.uuid4()  # a disabled endpoint gets nothing more
    await apply(sessions, requested(app, later, url=None))
    await apply(sessions, completed(app, later, JobStatus.FAILED))
    await dispatcher.drain()
    assert len(by_path(receiver, "/gone")) == 1 and len(by_path(receiver, "/ok")) == 3


async def test_an_endpoint_failing_for_the_whole_period_is_disabled_and_dead_lettered(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    bad_id, _ = await new_endpoint(sessions, app, "https://hooks.example.com/bad")
    await new_endpoint(sessions, app, "https://hooks.example.com/ok", ["endpoint.disabled"])
    receiver = Receiver()
    receiver.respond = lambda r: httpx.Response(500 if r.url.path == "/bad" else 200)
    # Compressed: attempts at 0, 5, 35 s; "5 days" = 30 s.
    dispatcher = make_dispatcher(sessions, clock, receiver, disable_after=timedelta(seconds=30))
    job = uuid.uuid4()
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await dispatcher.drain()
    clock.advance(5)
    await dispatcher.drain()
    async with uow_for(sessions) as uow:
        assert (await ENDPOINTS.get(uow, app, uuid.UUID(bad_id)))["enabled"] is True
    clock.advance(30)
    await dispatcher.drain()

    async with uow_for(sessions) as uow:
        view = await ENDPOINTS.get(uow, app, uuid.UUID(bad_id))
    assert view["enabled"] is False and view["disabled_reason"] == "failing"
    [notice] = by_path(receiver, "/ok")
    assert json.loads(notice.content)["data"]["endpoint_id"] == bad_id
    [entry] = [e for e in await log_for(sessions, app) if e["endpoint_id"] == bad_id]
    assert entry["status"] == "dead_lettered" and entry["attempt_count"] == 3
    assert entry["last_error"] == "retries_exhausted: endpoint answered 500"


async def test_a_success_ends_the_failing_streak(sessions: SessionFactory, clock: Clock) -> None:
    app = uuid.uuid4()
    eid, _ = await new_endpoint(sessions, app)
    answers = iter([httpx.Response(500), httpx.Response(200)])
    receiver = Receiver()
    receiver.respond = lambda r: next(answers)
    dispatcher = make_dispatcher(sessions, clock, receiver)
    job = uuid.uuid4()
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await dispatcher.drain()
    async with uow_for(sessions) as uow:
        assert (await ENDPOINTS.get(uow, app, uuid.UUID(eid)))["failing_since"] is not None
    clock.advance(5)
    await dispatcher.drain()
    async with uow_for(sessions) as uow:
        assert (await ENDPOINTS.get(uow, app, uuid.UUID(eid)))["failing_since"] is None


async def test_rotation_signs_with_both_secrets_during_the_grace_period(
    api: httpx.AsyncClient, sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    created = await api.post(
        f"/internal/apps/{app}/endpoints", json={"url": "https://hooks.example.com/r"}
    )
    eid, old = created.json()["endpoint"]["id"], created.json()["secret"]
    rotated = await api.post(f"/internal/apps/{app}/endpoints/{eid}/rotate-secret")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_")

    receiver = Receiver()
    clock.now = datetime.now(UTC)  # the grace period counts from the real rotation time
    dispatcher = make_dispatcher(sessions, clock, receiver)
    first, second = uuid.uuid4(), uuid.uuid4()
    await apply(sessions, requested(app, first, url=None))
    await apply(sessions, completed(app, first, JobStatus.FAILED))
    await dispatcher.drain()
    [during] = receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verify(old, during.headers, during.content)
    assert verify(new, during.headers, during.content)

    clock.advance(GRACE.total_seconds() + 60)
    await apply(sessions, requested(app, second, url=None))
    await apply(sessions, completed(app, second, JobStatus.FAILED), now=clock.now)
    await dispatcher.drain()
    after = receiver.requests[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verify(new, after.headers, after.content)
    assert not verify(old, after.headers, after.content)


async def test_replay_one_delivery_sends_it_again_with_the_same_webhook_id(
    api: httpx.AsyncClient, sessions: SessionFactory, clock: Clock
) -> None:
    app, other = uuid.uuid4(), uuid.uuid4()
    await new_endpoint(sessions, app)
    receiver = Receiver()
    answers = iter([httpx.Response(500), httpx.Response(500), httpx.Response(200)])
    receiver.respond = lambda r: next(answers)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0,5")
    job = uuid.uuid4()
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await dispatcher.drain()
    clock.advance(5)
    await dispatcher.drain()
    [entry] = await log_for(sessions, app)
    assert entry["status"] == "dead_lettered" and entry["attempt_count"] == 2

    path = f"/internal/apps/{app}/deliveries/{entry['id']}"
    foreign = f"/internal/apps/{other}/deliveries/{entry['id']}"
    assert (await api.get(foreign)).status_code == 404
    assert (await api.post(f"{foreign}/replay")).status_code == 404
    replay = await api.post(f"{path}/replay")
    assert replay.status_code == 202 and replay.json() == {"delivery_id": entry["id"]}
    busy = await api.post(f"{path}/replay")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "delivery_pending"
    clock.now = datetime.now(UTC) + timedelta(seconds=1)  # replays are due at real now
    await dispatcher.drain()

    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and ids == {entry["webhook_id"]}
    one = (await api.get(path)).json()
    assert one["status"] == "delivered" and one["delivery"]["id"] == entry["id"]
    assert [a["status_code"] for a in one["attempts"]] == [500, 500, 200]


async def test_replay_every_failed_delivery_since_a_time(
    api: httpx.AsyncClient, sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    await new_endpoint(sessions, app)
    receiver = Receiver()
    receiver.respond = lambda r: httpx.Response(500)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0")
    old_job, new_job = uuid.uuid4(), uuid.uuid4()
    await apply(sessions, requested(app, old_job, url=None))
    await apply(sessions, completed(app, old_job, JobStatus.FAILED), now=T0 - timedelta(hours=2))
    await apply(sessions, requested(app, new_job, url=None))
    await apply(sessions, completed(app, new_job, JobStatus.FAILED))
    await dispatcher.drain()
    assert {e["status"] for e in await log_for(sessions, app)} == {"dead_lettered"}

    receiver.respond = lambda r: httpx.Response(200)
    since = (T0 - timedelta(hours=1)).isoformat()
    response = await api.post(
        f"/internal/apps/{app}/deliveries/replay", json={"since": since, "status": "failed"}
    )
    assert response.status_code == 202 and response.json() == {"replayed": 1}
    clock.now = datetime.now(UTC) + timedelta(seconds=1)
    await dispatcher.drain()
    statuses = {e["job_id"]: e["status"] for e in await log_for(sessions, app)}
    assert statuses == {str(new_job): "delivered", str(old_job): "dead_lettered"}
    bad = await api.post(f"/internal/apps/{app}/deliveries/replay", json={"since": "yesterday"})
    assert bad.status_code == 422


async def test_delivery_list_filters_and_pages_with_a_cursor(
    api: httpx.AsyncClient, sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    first_id, _ = await new_endpoint(
        sessions, app, "https://hooks.example.com/1", ["job.cancelled"]
    )
    await new_endpoint(sessions, app, "https://hooks.example.com/2", ["job.cancelled"])
    receiver = Receiver()
    receiver.respond = lambda r: httpx.Response(200 if r.url.path == "/1" else 500)
    for i in range(3):
        job = uuid.uuid4()
        await apply(sessions, requested(app, job, url=None))
        await apply(
            sessions, completed(app, job, JobStatus.CANCELLED), now=T0 - timedelta(minutes=i)
        )
    await make_dispatcher(sessions, clock, receiver, schedule="0").drain()

    base = f"/internal/apps/{app}/deliveries"
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(base, params=params)).json()
        seen += [d["id"] for d in page["deliveries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6
    failed = (await api.get(base, params={"status": "dead_lettered"})).json()["deliveries"]
    assert len(failed) == 3 and {d["url"] for d in failed} == {"https://hooks.example.com/2"}
    assert (await api.get(base, params={"status": "failed"})).json()["deliveries"] == []
    mine = (await api.get(base, params={"endpoint_id": first_id})).json()["deliveries"]
    assert len(mine) == 3 and {d["status"] for d in mine} == {"delivered"}
    since = (T0 - timedelta(seconds=90)).isoformat()
    recent = (await api.get(base, params={"since": since})).json()
    assert len(recent["deliveries"]) == 4
    for params, code in (
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"status": "lost"}, "invalid_status"),
    ):
        response = await api.get(base, params=params)
        assert response.status_code == 422 and response.json()["error"]["code"] == code


async def test_one_endpoint_never_holds_more_than_its_share_of_slots(
    sessions: SessionFactory, clock: Clock
) -> None:
    app = uuid.uuid4()
    await new_endpoint(sessions, app, "https://hooks.example.com/slow", ["job.failed"])
    await new_endpoint(sessions, app, "https://hooks.example.com/fast", ["job.cancelled"])
    fast_done = asyncio.Event()
    in_flight = {"slow": 0, "peak": 0}
    fast_seen: list[str] = []

    async def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            in_flight["slow"] += 1
            in_flight["peak"] = max(in_flight["peak"], in_flight["slow"])
            await asyncio.wait_for(fast_done.wait(), timeout=5)
            in_flight["slow"] -= 1
        else:
            fast_seen.append(request.headers["webhook-id"])
            if len(fast_seen) == 3:
                fast_done.set()
        return httpx.Response(200)

    receiver = Receiver()
    receiver.respond = respond
    for _ in range(10):  # a backlog for the slow endpoint, due first
        job = uuid.uuid4()
        await apply(sessions, requested(app, job, url=None))
        await apply(sessions, completed(app, job, JobStatus.FAILED), now=T0 - timedelta(1))
    for _ in range(3):
        job = uuid.uuid4()
        await apply(sessions, requested(app, job, url=None))
        await apply(sessions, completed(app, job, JobStatus.CANCELLED))
    # 4 slots, 2 per endpoint: the slow backlog can never take the fast endpoint's turn.
    await make_dispatcher(sessions, clock, receiver, max_in_flight=4, per_endpoint=2).drain()
    assert len(fast_seen) == 3 and in_flight["peak"] == 2
    entries = await log_for(sessions, app)
    assert {e["status"] for e in entries} == {"delivered"}, [
        (e["status"], e["attempt_count"], e["next_attempt_at"], e["last_error"]) for e in entries
    ]


async def test_a_deleted_endpoints_pending_delivery_fails_without_a_request(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    eid, _ = await new_endpoint(sessions, app)
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    async with uow_for(sessions) as uow:
        await ENDPOINTS.delete(uow, app, uuid.UUID(eid))
    receiver = Receiver()
    await make_dispatcher(sessions, clock, receiver).drain()
    assert receiver.requests == []
    [entry] = await log_for(sessions, app)
    assert entry["status"] == "failed" and entry["last_error"] == "endpoint_deleted"


# --- dead letters the app hears about -----------------------------------------------------------


async def test_an_exhausted_delivery_is_dead_lettered_and_announced_to_the_apps_other_endpoints(
    api: httpx.AsyncClient, sessions: SessionFactory, clock: Clock
) -> None:
    app, other_app, job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    dead_id, _ = await new_endpoint(
        sessions, app, "https://hooks.example.com/dead", ["job.failed", "delivery.exhausted"]
    )
    _, watch_secret = await new_endpoint(
        sessions, app, "https://hooks.example.com/watch", ["delivery.exhausted"]
    )
    await new_endpoint(sessions, app, "https://hooks.example.com/jobs", ["job.cancelled"])
    await new_endpoint(sessions, other_app, "https://hooks.example.com/theirs", None)
    receiver = Receiver()
    receiver.respond = lambda r: httpx.Response(500 if r.url.path == "/dead" else 200)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0,5")
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await dispatcher.drain()
    assert by_path(receiver, "/watch") == []  # one attempt left: nothing to announce yet
    clock.advance(5)
    await dispatcher.drain()

    assert len(by_path(receiver, "/dead")) == 2  # the failed endpoint is not told about itself
    [notice] = by_path(receiver, "/watch")
    assert verify(watch_secret, notice.headers, notice.content)
    body = json.loads(notice.content)
    dead = next(e for e in await log_for(sessions, app) if e["endpoint_id"] == dead_id)
    assert dead["status"] == "dead_lettered"
    assert body["type"] == "delivery.exhausted"
    assert body["data"] == {
        "delivery_id": dead["id"],
        "webhook_id": dead["webhook_id"],
        "endpoint_id": dead_id,
        "url": "https://hooks.example.com/dead",
        "event_type": "job.failed",
        "job_id": str(job),
        "attempts": 2,
        "last_error": "retries_exhausted: endpoint answered 500",
        "exhausted_at": body["timestamp"],
    }
    assert notice.headers["webhook-id"] != dead["webhook_id"]
    assert by_path(receiver, "/jobs") == [] and by_path(receiver, "/theirs") == []
    assert await log_for(sessions, other_app) == []

    base = f"/internal/apps/{app}/deliveries"
    [listed] = (await api.get(base, params={"status": "dead_lettered"})).json()["deliveries"]
    assert listed["id"] == dead["id"]
    assert (await api.get(base, params={"status": "failed"})).json()["deliveries"] == []
    # Replayable as any dead letter: `dead_lettered` only, or `failed` (every unsuccessful end).
    receiver.respond = lambda r: httpx.Response(200)
    replay = await api.post(
        f"{base}/replay",
        json={"since": (T0 - timedelta(hours=1)).isoformat(), "status": "dead_lettered"},
    )
    assert replay.status_code == 202 and replay.json() == {"replayed": 1}
    clock.now = datetime.now(UTC) + timedelta(seconds=1)
    await dispatcher.drain()
    again = next(e for e in await log_for(sessions, app) if e["endpoint_id"] == dead_id)
    assert again["status"] == "delivered" and again["webhook_id"] == dead["webhook_id"]
    assert len(by_path(receiver, "/watch")) == 1


async def test_a_jobs_own_url_exhausted_is_announced_to_the_apps_endpoints(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_secret(sessions, app)
    await new_endpoint(sessions, app, "https://hooks.example.com/watch", ["delivery.exhausted"])
    receiver = Receiver()
    receiver.respond = lambda r: httpx.Response(503 if r.url.path == "/genhub" else 200)
    await apply(sessions, requested(app, job))  # the job's own https://hooks.example.com/genhub
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    await make_dispatcher(sessions, clock, receiver, schedule="0").drain()

    [notice] = by_path(receiver, "/watch")
    data = json.loads(notice.content)["data"]
    assert data["endpoint_id"] is None and data["url"] == "https://hooks.example.com/genhub"
    assert data["job_id"] == str(job) and data["attempts"] == 1
    # The announcement never goes to the job's own URL that just failed.
    assert len(by_path(receiver, "/genhub")) == 1


async def test_exhaustion_notices_never_announce_each_other_in_a_loop(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_endpoint(sessions, app, "https://hooks.example.com/a")  # every type
    await new_endpoint(sessions, app, "https://hooks.example.com/b")
    receiver = Receiver()
    receiver.respond = lambda r: httpx.Response(500)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="0")
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    for _ in range(4):
        await dispatcher.drain()
        clock.advance(60)

    entries = await log_for(sessions, app)
    # job.failed to a and b, then each one's exhaustion to the other; those die quietly.
    assert sorted(e["type"] for e in entries) == [
        "delivery.exhausted",
        "delivery.exhausted",
        "job.failed",
        "job.failed",
    ]
    assert {e["status"] for e in entries} == {"dead_lettered"}
    assert len(receiver.requests) == 4
    assert len(await message_statuses(sessions, app)) == 3


# --- hand-off: new deliveries leased when recorded, sent without a claim -------------------------


async def record_batch(
    sessions: SessionFactory, recorder: EventRecorder, events: list[JobCompleted], *, commit: bool
) -> None:
    async with uow_for(sessions) as uow:
        await recorder.record_job_events(uow, events, T0)
        if commit:
            await uow.commit()


async def wait_for(predicate: Callable[[], bool], seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def delivery_rows(sessions: SessionFactory, app: uuid.UUID) -> list[Any]:
    async with sessions() as session:
        result = await session.exec(
            text(  # type: ignore[call-overload]
                "SELECT status, claim_token, next_attempt_at, attempt_count FROM deliveries"
                " WHERE app_id = :app ORDER BY id"
            ),
            params={"app": app},
        )
        return list(result.all())


async def test_a_recorded_delivery_is_sent_at_once_without_a_claim_round(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    _, secret = await new_endpoint(sessions, app)
    await apply(sessions, requested(app, job, url=None))
    receiver = Receiver()
    dispatcher = make_dispatcher(sessions, clock, receiver)
    recorder = EventRecorder(FANOUT, handoff=dispatcher)

    await record_batch(sessions, recorder, [completed(app, job, JobStatus.FAILED)], commit=True)
    # No drain(), no claim: the dispatcher's loop is not even running.
    await wait_for(lambda: len(receiver.requests) == 1)
    request = receiver.requests[0]
    assert request.headers["webhook-id"] == job_message_id(job, WebhookEventType.FAILED)
    assert verify(secret, request.headers, request.content)
    for _ in range(100):
        rows = await delivery_rows(sessions, app)
        if rows[0][0] == "delivered":
            break
        await asyncio.sleep(0.02)
    assert [(r[0], r[1], r[3]) for r in rows] == [("delivered", None, 1)]
    assert len((await log_for(sessions, app))[0]["attempts"]) == 1


async def test_a_crash_after_the_commit_leaves_the_delivery_leased_until_the_lease_ends(
    sessions: SessionFactory, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_endpoint(sessions, app)
    await apply(sessions, requested(app, job, url=None))
    crashed = make_dispatcher(sessions, clock, Receiver())
    # The process dies between the commit and the send: nothing is launched.
    monkeypatch.setattr(crashed, "_launch", lambda rows, context: None)
    await record_batch(
        sessions,
        EventRecorder(FANOUT, handoff=crashed),
        [completed(app, job, JobStatus.FAILED)],
        commit=True,
    )
    await asyncio.sleep(0.05)
    [(status, token, next_at, attempts)] = await delivery_rows(sessions, app)
    assert status == "pending" and token is not None and attempts == 0
    assert next_at == T0 + timedelta(seconds=60)  # the lease was committed with the row

    receiver = Receiver()
    survivor = make_dispatcher(sessions, clock, receiver)
    assert await survivor.drain() == 0  # still leased
    clock.advance(61)
    assert await survivor.drain() == 1
    assert [r.headers["webhook-id"] for r in receiver.requests] == [
        job_message_id(job, WebhookEventType.FAILED)
    ]
    [(status, token, _, attempts)] = await delivery_rows(sessions, app)
    assert (status, token, attempts) == ("delivered", None, 1)


async def test_a_rolled_back_hand_off_gives_its_slot_back(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_endpoint(sessions, app)
    await apply(sessions, requested(app, job, url=None))
    receiver = Receiver()
    dispatcher = make_dispatcher(sessions, clock, receiver, per_endpoint=1, max_in_flight=1)
    recorder = EventRecorder(FANOUT, handoff=dispatcher)

    await record_batch(sessions, recorder, [completed(app, job, JobStatus.FAILED)], commit=False)
    assert await delivery_rows(sessions, app) == []  # rolled back: nothing recorded
    await record_batch(sessions, recorder, [completed(app, job, JobStatus.FAILED)], commit=True)
    # Had the rolled-back reservation kept the only slot, this would wait for a claim round.
    await wait_for(lambda: len(receiver.requests) == 1)


async def endpoint_with_jobs(
    sessions: SessionFactory, count: int
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """An app with one endpoint and `count` requested jobs (no per-job webhook URL)."""
    app = uuid.uuid4()
    jobs = [uuid.uuid4() for _ in range(count)]
    await new_endpoint(sessions, app)
    for job in jobs:
        await apply(sessions, requested(app, job, url=None))
    return app, jobs


def gated_receiver() -> tuple["Receiver", asyncio.Event]:
    """A receiver that holds every answer until the event is set."""
    gate = asyncio.Event()
    receiver = Receiver()

    async def slow(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return httpx.Response(204)

    receiver.respond = slow
    return receiver, gate


async def test_the_hand_off_keeps_the_per_endpoint_bound(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, jobs = await endpoint_with_jobs(sessions, 5)
    receiver, gate = gated_receiver()
    dispatcher = make_dispatcher(sessions, clock, receiver, per_endpoint=2)
    recorder = EventRecorder(FANOUT, handoff=dispatcher)
    await record_batch(
        sessions, recorder, [completed(app, j, JobStatus.FAILED) for j in jobs], commit=True
    )
    await wait_for(lambda: len(receiver.requests) == 2)
    await asyncio.sleep(0.1)
    assert len(receiver.requests) == 2  # the endpoint's bound; the rest wait unleased
    rows = await delivery_rows(sessions, app)
    assert sorted(r[1] is None for r in rows) == [False, False, True, True, True]
    gate.set()
    await dispatcher.drain()
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert [r[0] for r in await delivery_rows(sessions, app)] == ["delivered"] * 5


# --- the due-time watermark (run_forever claims only when something is known due) --------------


def real_now() -> datetime:
    return datetime.now(UTC)


class ClaimCounter:
    """Counts the dispatcher's claim queries (the real ones run underneath)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from genhub_notifier.adapters import repository

        self.calls = 0
        real = repository.claim_due

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await real(*args, **kwargs)

        monkeypatch.setattr(repository, "claim_due", counted)


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[None]:
    task = asyncio.create_task(dispatcher.run_forever())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sends_cost_no_claim_and_a_retry_due_later_is_sent_on_time(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the safety poll far away (30 s), handed-off sends trigger no claim query, and a
    retry this process scheduled 1 s out is claimed and sent when due, not at the poll."""
    app, jobs = await endpoint_with_jobs(sessions, 6)
    receiver = Receiver()
    answers = {"left": 1}

    def first_fails(request: httpx.Request) -> httpx.Response:
        first = request.headers["webhook-id"] == job_message_id(jobs[0], WebhookEventType.FAILED)
        if first and answers["left"]:
            answers["left"] -= 1
            return httpx.Response(500)
        return httpx.Response(204)

    receiver.respond = first_fails
    claims = ClaimCounter(monkeypatch)
    dispatcher = make_dispatcher(
        sessions, real_now, receiver, schedule="0,1", per_endpoint=8, poll_s=30
    )
    recorder = EventRecorder(FANOUT, handoff=dispatcher)
    async with running(dispatcher):
        await wait_for(lambda: claims.calls == 1)  # the start-up claim
        async with uow_for(sessions) as uow:
            await recorder.record_job_events(
                uow, [completed(app, j, JobStatus.FAILED) for j in jobs], real_now()
            )
            await uow.commit()
        failed_at = real_now()
        await wait_for(lambda: len(receiver.requests) == 6)
        await asyncio.sleep(0.2)
        assert claims.calls == 1  # six sends, no claim query after any of them
        await wait_for(lambda: len(receiver.requests) == 7, seconds=4)
        retried_after = (real_now() - failed_at).total_seconds()
        # Outcomes are recorded by the writer after the answers: wait for them, not for luck.
        for _ in range(150):
            rows = await delivery_rows(sessions, app)
            if [r[0] for r in rows] == ["delivered"] * 6:
                break
            await asyncio.sleep(0.02)
    assert 0.7 <= retried_after < 3.0  # the schedule's 1 s (+ recording), not the 30 s poll
    retried = receiver.requests[-1].headers["webhook-id"]
    assert retried == job_message_id(jobs[0], WebhookEventType.FAILED)
    assert [r[0] for r in rows] == ["delivered"] * 6
    assert sorted(r[3] for r in rows) == [1, 1, 1, 1, 1, 2]


async def test_a_stored_delivery_due_later_is_sent_on_time_after_a_restart(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry scheduled before a restart (nothing in memory) is found by the start-up
    claim's outlook and sent when due, with the safety poll 30 s away."""
    app, job = uuid.uuid4(), uuid.uuid4()
    await new_endpoint(sessions, app)
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job, JobStatus.FAILED), now=real_now())
    due_at = real_now() + timedelta(seconds=1)
    async with sessions() as session, session.begin():
        await session.exec(
            text("UPDATE deliveries SET next_attempt_at = :at WHERE app_id = :app"),  # type: ignore[call-overload]
            params={"at": due_at, "app": app},
        )
    receiver = Receiver()
    claims = ClaimCounter(monkeypatch)
    dispatcher = make_dispatcher(sessions, real_now, receiver, poll_s=30)
    async with running(dispatcher):
        await wait_for(lambda: claims.calls == 1)
        assert receiver.requests == []  # not due yet
        await wait_for(lambda: len(receiver.requests) == 1, seconds=4)
        late = (real_now() - due_at).total_seconds()
    assert 0 <= late < 1.5  # (loaded CI boxes) — the safety poll is 30 s away
    assert claims.calls == 2  # start-up, then exactly when it came due
    assert receiver.requests[0].headers["webhook-id"] == job_message_id(
        job, WebhookEventType.FAILED
    )


async def test_shutdown_records_the_outcome_of_a_send_that_already_got_its_answer(
    sessions: SessionFactory,
) -> None:
    """Stopping while an answered send's outcome is still being written: shutdown lets the
    writer finish (the row ends `delivered` with its attempt) instead of cancelling it and
    handing the row back, which would make another replica send the webhook again."""
    app, jobs = await endpoint_with_jobs(sessions, 1)
    holder = sessions()  # holds the delivery's row lock: the outcome's write waits for it
    receiver = Receiver()

    async def lock_then_answer(request: httpx.Request) -> httpx.Response:
        await holder.exec(
            text("SELECT id FROM deliveries WHERE app_id = :app FOR UPDATE"),  # type: ignore[call-overload]
            params={"app": app},
        )
        return httpx.Response(204)

    receiver.respond = lock_then_answer
    dispatcher = make_dispatcher(sessions, real_now, receiver, poll_s=30)
    recorder = EventRecorder(FANOUT, handoff=dispatcher)
    task = asyncio.create_task(dispatcher.run_forever())
    try:
        async with uow_for(sessions) as uow:
            await recorder.record_job_events(
                uow, [completed(app, jobs[0], JobStatus.FAILED)], real_now()
            )
            await uow.commit()
        await wait_for(lambda: len(receiver.requests) == 1)
        await asyncio.sleep(0.1)  # the writer is now waiting for the row
        task.cancel()
        await asyncio.sleep(0.2)
        assert not task.done()  # shutdown waits for the outcome to be written
    finally:
        await holder.rollback()
        await holder.close()
        await asyncio.gather(task, return_exceptions=True)
    [(status, claim_token, _, attempts)] = await delivery_rows(sessions, app)
    assert (status, claim_token, attempts) == ("delivered", None, 1)
    assert len(receiver.requests) == 1


async def test_rows_held_back_by_the_endpoint_bound_are_claimed_when_a_slot_frees(
    sessions: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, jobs = await endpoint_with_jobs(sessions, 5)
    receiver, gate = gated_receiver()
    dispatcher = make_dispatcher(sessions, real_now, receiver, per_endpoint=2, poll_s=30)
    recorder = EventRecorder(FANOUT, handoff=dispatcher)
    async with running(dispatcher):
        async with uow_for(sessions) as uow:
            await recorder.record_job_events(
                uow, [completed(app, j, JobStatus.FAILED) for j in jobs], real_now()
            )
            await uow.commit()
        await wait_for(lambda: len(receiver.requests) == 2)
        await asyncio.sleep(0.2)
        assert len(receiver.requests) == 2  # the bound holds
        gate.set()
        await wait_for(lambda: len(receiver.requests) == 5)  # well before the 30 s poll
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 5


async def test_a_jobs_own_url_is_handed_off_signed_with_the_app_secret(
    sessions: SessionFactory, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No claim round for a job's own webhook_url either: the app secret is read while
    recording; the URL still goes through the SSRF guard (a private address is refused)."""
    app, job, private_job = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    secret = await new_secret(sessions, app)
    await apply(sessions, requested(app, job, url="https://hooks.example.com/own"))
    await apply(sessions, requested(app, private_job, url="http://10.0.0.5/own"))
    receiver = Receiver()
    claims = ClaimCounter(monkeypatch)
    dispatcher = make_dispatcher(sessions, clock, receiver)
    recorder = EventRecorder(FANOUT, handoff=dispatcher)
    await record_batch(
        sessions,
        recorder,
        [completed(app, j, JobStatus.FAILED) for j in (job, private_job)],
        commit=True,
    )
    await wait_for(lambda: len(receiver.requests) == 1)
    request = receiver.requests[0]
    assert request.url.path == "/own" and request.headers["host"] == "hooks.example.com"
    assert request.headers["webhook-id"] == job_message_id(job, WebhookEventType.FAILED)
    assert verify(secret, request.headers, request.content)
    for _ in range(100):
        rows = await delivery_rows(sessions, app)
        if all(r[0] != "pending" for r in rows):
            break
        await asyncio.sleep(0.02)
    assert sorted(r[0] for r in rows) == ["delivered", "failed"]  # the private one refused
    assert claims.calls == 0  # neither went through a claim
    assert len(receiver.requests) == 1
