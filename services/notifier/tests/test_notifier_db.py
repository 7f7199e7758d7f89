"""Use cases, dispatcher and HTTP routes against the real local PostgreSQL (genhub_notifier_test).

Webhook receivers: httpx MockTransport for most cases, and one real http.server on 127.0.0.1.
"""

import asyncio
import base64
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
    RejectReason,
    TokensRejected,
)
from genhub_contracts.events import (
    JobCompletedPayload,
    JobRequestedPayload,
    TokensRejectedPayload,
)
from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.adapters.storage_client import StorageClient
from genhub_notifier.adapters.tables import Delivery, SigningSecret
from genhub_notifier.adapters.webhook_sender import EXCERPT_BYTES, WebhookSender
from genhub_notifier.domain.delivery import WebhookEventType, delivery_id
from genhub_notifier.domain.retry import RetrySchedule
from genhub_notifier.handlers.http import router
from genhub_notifier.services import deliveries, events
from genhub_notifier.services.dispatcher import DispatchConfig, Dispatcher
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
                "TRUNCATE delivery_attempts, deliveries, job_subscriptions, signing_secrets,"
                " processed_events, outbox"
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
    clock: Clock,
    receiver: Receiver | None = None,
    *,
    resolver_answer: list[str] | None = None,
    storage: Handler = storage_files,
    schedule: str = "5,30",
    allow_private: bool = False,
    real_network: bool = False,
    max_in_flight: int = 32,
) -> Dispatcher:
    answer = resolver_answer or [PUBLIC_IP]

    async def resolver(host: str, port: int) -> list[str]:
        return answer

    guard = (
        UrlGuard(allow_private=allow_private, require_https=False)
        if real_network
        else UrlGuard(allow_private=allow_private, require_https=False, resolver=resolver)
    )
    sender = WebhookSender(
        timeout_s=5, transport=None if real_network else httpx.MockTransport(receiver or Receiver())
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
            lease=timedelta(seconds=60),
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


async def apply(sessions: SessionFactory, event: Any, now: datetime = T0) -> None:
    handler = {
        JobRequested: events.remember_job,
        JobCompleted: events.record_completion,
        TokensRejected: events.record_rejection,
    }[type(event)]
    async with uow_for(sessions) as uow:
        await handler(uow, event, now)
        await uow.commit()


async def log_for(
    sessions: SessionFactory, app_id: uuid.UUID, job_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    async with uow_for(sessions) as uow:
        return await deliveries.delivery_log(uow, app_id, job_id, 50)


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
    assert request.headers["webhook-id"] == delivery_id(job, WebhookEventType.SUCCEEDED)
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
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "waiting_subscription" and receiver.requests == []

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

    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "no_endpoint" and entry["attempts"] == []
    assert receiver.requests == []


async def test_job_without_webhook_url_has_no_endpoint(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    receiver = Receiver()
    await apply(sessions, requested(app, job, url=None))
    await apply(sessions, completed(app, job))
    await make_dispatcher(sessions, clock, receiver).drain()
    assert [e["status"] for e in await log_for(sessions, app, job)] == ["no_endpoint"]
    assert receiver.requests == []


# --- retries ------------------------------------------------------------------------------------


async def test_failures_retry_on_schedule_with_the_same_id_then_die(
    sessions: SessionFactory, clock: Clock
) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    secret = await new_secret(sessions, app)
    receiver = Receiver()
    receiver.respond = lambda request: httpx.Response(500, content=b"x" * 5000)
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="5,30")
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
        delivery_id(job, WebhookEventType.SUCCEEDED)
    }
    assert [r.headers["webhook-timestamp"] for r in receiver.requests] == [
        str(int((T0 + timedelta(seconds=s)).timestamp())) for s in (0, 5, 35)
    ]
    assert all(verify(secret, r.headers, r.content) for r in receiver.requests)
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "dead" and entry["attempt_count"] == 3
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
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="5,30,60")
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
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="5,30")
    await apply(sessions, requested(app, job))
    await apply(sessions, completed(app, job))

    assert await dispatcher.drain() == 1
    for _ in range(3):
        clock.advance(3600)
        assert await dispatcher.drain() == 0  # never retried

    assert len(receiver.requests) == 1
    [entry] = await log_for(sessions, app, job)
    assert entry["status"] == "dead" and entry["next_attempt_at"] is None
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
    dispatcher = make_dispatcher(sessions, clock, receiver, schedule="5,30")
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
    assert entry["status"] == "dead"
    assert entry["last_error"].startswith("address_refused")


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
            len(await repo.claim_due(session, T0, 10, T0 + timedelta(seconds=60), uuid.uuid4()))
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
    assert [e["status"] for e in await log_for(sessions, intruder)] == ["waiting_subscription"]


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
    assert (await log_for(sessions, app, job))[0]["status"] == "dead"


# --- HTTP routes --------------------------------------------------------------------------------


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
    app.include_router(router(BOX))
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
    assert entry["id"] == delivery_id(jobs[0], WebhookEventType.FAILED)
    assert entry["type"] == "job.failed" and entry["status"] == "delivered"
    assert entry["url"] == "https://hooks.example.com/genhub"
    assert entry["attempts"][0]["status_code"] == 204
    assert entry["attempts"][0]["latency_ms"] >= 0
    foreign = await api.get(
        f"/internal/apps/{other_app}/deliveries", params={"job_id": str(jobs[0])}
    )
    assert foreign.json() == {"deliveries": []}


async def test_delivery_rows_are_unique_per_job_and_type(sessions: SessionFactory) -> None:
    app, job = uuid.uuid4(), uuid.uuid4()
    await apply(sessions, completed(app, job))
    await apply(sessions, completed(app, job, JobStatus.FAILED))
    async with sessions() as session:
        rows = (await session.exec(select(Delivery).where(Delivery.job_id == job))).all()
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
