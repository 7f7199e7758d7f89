"""Against the real test database (genhub_gateway_test): admin API, the generate transaction,
the read-model projection, tenant isolation, key lifecycle. Upstream services are faked."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_client import AsyncGenhub, AsyncGenhubAdmin, GenhubError
from genhub_contracts import (
    ErrorInfo,
    JobCompleted,
    JobRequested,
    JobStarted,
    OutputFile,
    RejectReason,
    TokensRejected,
    TokensReserved,
    TokensSettled,
    parse_event,
)
from genhub_contracts.events import (
    JobCompletedPayload,
    JobStartedPayload,
    TokensRejectedPayload,
    TokensReservedPayload,
    TokensSettledPayload,
)
from genhub_gateway.handlers import kafka as handlers
from genhub_gateway.handlers.http import billing_key
from sqlalchemy import text

ADMIN = {"Authorization": "Bearer test-admin-token"}
BODY = {"model": "mock", "input": {"prompt": "a red fox"}, "metadata": {"order": "A-1"}}

pytestmark = pytest.mark.usefixtures("clean_db")


async def create_tenant(
    http: httpx.AsyncClient, slug: str = "acme", **extra: Any
) -> dict[str, Any]:
    response = await http.post(
        "/admin/apps", headers=ADMIN, json={"name": slug.title(), "slug": slug, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def rows(app: FastAPI, sql: str) -> list[Any]:
    async with app.state.runtime.engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def deliver(app: FastAPI, handler: Any, event: Any) -> None:
    """What the platform's EventConsumer does per message: inbox check, handler, commit."""
    async with app.state.runtime.uow() as uow:
        if await uow.first_delivery(f"gateway.{handler.__name__}", event.event_id):
            await handler(event, uow)
            await uow.commit()


async def submit(http: httpx.AsyncClient, key: str, user: str = "u1", **headers: str) -> str:
    response = await http.post(
        "/v1/generate", headers={"X-API-Key": key, "X-User-ID": user, **headers}, json=BODY
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    job_id: str = response.json()["job_id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    return job_id


# --- admin --------------------------------------------------------------------------------------


async def test_create_app_returns_key_and_webhook_secret_and_stores_only_the_hash(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(http, plan="pro", webhook_url="https://hooks.example.com/x")
    assert created["app"]["slug"] == "acme"
    assert created["app"]["plan"] == "pro"
    assert created["app"]["enabled"] is True
    assert created["api_key"].startswith("gh_live_")
    assert created["webhook_secret"].startswith("whsec_")
    [(prefix, key_hash)] = await rows(app, "SELECT prefix, key_hash FROM api_keys")
    assert created["api_key"].startswith(prefix) and len(prefix) == 16
    assert created["api_key"] not in key_hash

    listed = (await http.get("/admin/apps", headers=ADMIN)).json()["apps"]
    assert [a["slug"] for a in listed] == ["acme"]
    assert listed[0]["keys"][0]["prefix"] == prefix
    assert "key_hash" not in listed[0]["keys"][0]


async def test_duplicate_slug_is_409(http: httpx.AsyncClient) -> None:
    await create_tenant(http)
    response = await http.post("/admin/apps", headers=ADMIN, json={"name": "X", "slug": "acme"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "slug_taken"


async def test_notifier_down_creates_nothing(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any
) -> None:
    upstreams.down.add("notifier")
    response = await http.post("/admin/apps", headers=ADMIN, json={"name": "X", "slug": "acme"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert await rows(app, "SELECT id FROM apps") == []


@pytest.mark.parametrize("slug", ["Acme", "-acme", "acme_1", "a" * 65, ""])
async def test_bad_slug_is_422(http: httpx.AsyncClient, slug: str) -> None:
    response = await http.post("/admin/apps", headers=ADMIN, json={"name": "X", "slug": slug})
    assert response.status_code == 422


async def test_key_lifecycle_new_key_revoke_and_disable(http: httpx.AsyncClient) -> None:
    created = await create_tenant(http)
    app_id, first = created["app"]["id"], created["api_key"]
    response = await http.post(f"/admin/apps/{app_id}/keys", headers=ADMIN)
    assert response.status_code == 201
    second, second_id = response.json()["api_key"], response.json()["key"]["id"]
    assert second != first
    for key in (first, second):
        assert (await http.get("/v1/models", headers={"X-API-Key": key})).status_code == 200

    revoked = await http.delete(f"/admin/apps/{app_id}/keys/{second_id}", headers=ADMIN)
    assert revoked.json()["revoked_at"] is not None
    response = await http.get("/v1/models", headers={"X-API-Key": second})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_api_key")

    await http.patch(f"/admin/apps/{app_id}", headers=ADMIN, json={"enabled": False})
    response = await http.get("/v1/models", headers={"X-API-Key": first})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "app_disabled")

    missing = await http.post(f"/admin/apps/{uuid.uuid4()}/keys", headers=ADMIN)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "app_not_found")


# --- generate -----------------------------------------------------------------------------------


async def test_generate_writes_one_job_row_and_one_outbox_row_in_one_transaction(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(http, plan="pro", webhook_url="https://hooks.example.com/x")
    job_id = await submit(http, created["api_key"], user="user@example.com")

    jobs = await rows(app, "SELECT job_id, status, user_id, xmin::text FROM jobs")
    outbox = await rows(app, "SELECT topic, key, payload, xmin::text FROM outbox")
    assert len(jobs) == 1 and len(outbox) == 1
    (row_job_id, status, user_id, job_xmin), (topic, key, payload, outbox_xmin) = jobs[0], outbox[0]
    assert (str(row_job_id), status, user_id) == (job_id, "queued", "user@example.com")
    # Same inserting transaction id: the state change and its event commit together.
    assert job_xmin == outbox_xmin

    event = parse_event(bytes(payload))
    assert isinstance(event, JobRequested)
    assert (topic, bytes(key)) == ("job.requested", job_id.encode())
    assert str(event.job_id) == job_id and str(event.app_id) == created["app"]["id"]
    spec = event.payload.spec
    assert (spec.user_id, spec.model, spec.plan, spec.priority) == (
        "user@example.com",
        "mock",
        "pro",
        5,
    )
    assert str(spec.webhook_url) == "https://hooks.example.com/x"  # the app's default
    assert spec.metadata == {"order": "A-1"}
    assert spec.input.prompt == "a red fox"


async def test_rejected_requests_write_nothing(app: FastAPI, http: httpx.AsyncClient) -> None:
    created = await create_tenant(http)
    headers = {"X-API-Key": created["api_key"], "X-User-ID": "u1"}
    for body in ({"model": "nope", "input": {"prompt": "x"}}, {"model": "mock", "input": {}}):
        assert (await http.post("/v1/generate", headers=headers, json=body)).status_code == 422
    assert await rows(app, "SELECT 1 FROM jobs") == []
    assert await rows(app, "SELECT 1 FROM outbox") == []


async def test_idempotency_key_returns_the_first_job(app: FastAPI, http: httpx.AsyncClient) -> None:
    created = await create_tenant(http)
    first = await submit(http, created["api_key"], **{"Idempotency-Key": "k1"})
    again = await submit(http, created["api_key"], **{"Idempotency-Key": "k1"})
    other = await submit(http, created["api_key"], **{"Idempotency-Key": "k2"})
    assert first == again != other
    assert len(await rows(app, "SELECT 1 FROM jobs")) == 2
    assert len(await rows(app, "SELECT 1 FROM outbox")) == 2


async def test_body_webhook_url_overrides_the_apps(app: FastAPI, http: httpx.AsyncClient) -> None:
    created = await create_tenant(http, webhook_url="https://hooks.example.com/app")
    response = await http.post(
        "/v1/generate",
        headers={"X-API-Key": created["api_key"], "X-User-ID": "u1"},
        json={**BODY, "webhook_url": "https://hooks.example.com/job", "priority": 8},
    )
    assert response.status_code == 202
    [(payload,)] = await rows(app, "SELECT payload FROM outbox")
    spec = parse_event(bytes(payload)).payload.spec
    assert (str(spec.webhook_url), spec.priority) == ("https://hooks.example.com/job", 8)


# --- read-model ---------------------------------------------------------------------------------

T0 = datetime.now(UTC)


def saga_events(app_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, Any]:
    from genhub_contracts import JobSpec

    spec = JobSpec(user_id="u1", model="mock", input={"prompt": "a red fox"})  # type: ignore[arg-type]
    output = OutputFile(
        index=0,
        key=f"outputs/{app_id}/{job_id}/0.png",
        content_type="image/png",
        width=512,
        height=512,
        bytes=2048,
        sha256="00" * 32,
    )
    ids = {"app_id": app_id, "job_id": job_id}
    return {
        "reserved": TokensReserved.new(
            **ids,
            payload=TokensReservedPayload(spec=spec, hold_id=uuid.uuid4(), amount=10),
            occurred_at=T0 + timedelta(seconds=1),
        ),
        "started": JobStarted.new(
            **ids,
            payload=JobStartedPayload(user_id="u1", provider="mock"),
            occurred_at=T0 + timedelta(seconds=2),
        ),
        "completed": JobCompleted.new(
            **ids,
            payload=JobCompletedPayload(
                user_id="u1",
                status="succeeded",  # type: ignore[arg-type]
                requested_outputs=1,
                outputs=[output],
                provider="mock",
                attempts=1,
            ),
            occurred_at=T0 + timedelta(seconds=3),
        ),
        "settled": TokensSettled.new(
            **ids,
            payload=TokensSettledPayload(
                user_id="u1", outcome="posted", charged=10, refunded=0, balance_after=90
            ),
            occurred_at=T0 + timedelta(seconds=4),
        ),
    }


HANDLERS = {
    "reserved": handlers.on_tokens_reserved,
    "started": handlers.on_job_started,
    "completed": handlers.on_job_completed,
    "settled": handlers.on_tokens_settled,
}


async def test_out_of_order_events_project_to_the_final_state(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any
) -> None:
    created = await create_tenant(http)
    key, app_id = created["api_key"], uuid.UUID(created["app"]["id"])
    job_id = await submit(http, key)
    events = saga_events(app_id, uuid.UUID(job_id))
    upstreams.files[job_id] = [
        {"index": 0, "key": "k", "url": "http://minio/outputs/0.png?sig=fresh",
         "content_type": "image/png", "width": 512, "height": 512, "bytes": 2048}
    ]  # fmt: skip

    # Settled and completed overtake started and reserved; then everything is delivered twice.
    for name in ("settled", "completed", "started", "reserved") * 2:
        await deliver(app, HANDLERS[name], events[name])

    response = await http.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded"
    assert job["tokens"] == {"reserved": 10, "charged": 10, "refunded": 0}
    assert job["provider"] == "mock"
    assert job["error"] is None
    assert job["metadata"] == {"order": "A-1"}
    assert job["outputs"] == [
        {"index": 0, "url": "http://minio/outputs/0.png?sig=fresh", "content_type": "image/png",
         "width": 512, "height": 512, "bytes": 2048}
    ]  # fmt: skip
    [(reserved_at, started_at, completed_at, settled_at)] = await rows(
        app, "SELECT reserved_at, started_at, completed_at, settled_at FROM jobs"
    )
    assert reserved_at < started_at < completed_at < settled_at

    upstreams.down.add("storage")
    response = await http.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key})
    assert (response.status_code, response.json()["error"]["code"]) == (503, "upstream_unavailable")


async def test_rejection_and_failure_are_projected(app: FastAPI, http: httpx.AsyncClient) -> None:
    created = await create_tenant(http)
    key, app_id = created["api_key"], uuid.UUID(created["app"]["id"])
    rejected, failed = await submit(http, key), await submit(http, key)
    await deliver(
        app,
        handlers.on_tokens_rejected,
        TokensRejected.new(
            app_id=app_id,
            job_id=uuid.UUID(rejected),
            payload=TokensRejectedPayload(
                user_id="u1",
                reason=RejectReason.INSUFFICIENT_TOKENS,
                message="needs 10 tokens, has 9",
                balance=9,
                required=10,
            ),
        ),
    )
    await deliver(
        app,
        handlers.on_job_completed,
        JobCompleted.new(
            app_id=app_id,
            job_id=uuid.UUID(failed),
            payload=JobCompletedPayload(
                user_id="u1",
                status="failed",  # type: ignore[arg-type]
                requested_outputs=1,
                error=ErrorInfo(code="provider_error", message="mock failure"),  # type: ignore[arg-type]
                provider="mock",
                attempts=2,
            ),
        ),
    )
    job = (await http.get(f"/v1/jobs/{rejected}", headers={"X-API-Key": key})).json()
    assert job["status"] == "rejected"
    assert job["error"] == {
        "code": "insufficient_tokens",
        "message": "needs 10 tokens, has 9",
        "details": {"balance": 9, "required": 10},
    }
    job = (await http.get(f"/v1/jobs/{failed}", headers={"X-API-Key": key})).json()
    assert (job["status"], job["error"]["code"], job["outputs"]) == ("failed", "provider_error", [])


async def test_events_for_unknown_jobs_are_ignored(app: FastAPI) -> None:
    events = saga_events(uuid.uuid4(), uuid.uuid4())
    await deliver(app, handlers.on_job_completed, events["completed"])
    assert await rows(app, "SELECT 1 FROM jobs") == []


# --- isolation and cancel -----------------------------------------------------------------------


async def test_another_apps_job_is_404(http: httpx.AsyncClient) -> None:
    mine = await create_tenant(http, "mine")
    theirs = await create_tenant(http, "theirs")
    job_id = await submit(http, mine["api_key"])
    for path in (f"/v1/jobs/{job_id}", "/v1/jobs/not-a-uuid", f"/v1/jobs/{uuid.uuid4()}"):
        response = await http.get(path, headers={"X-API-Key": theirs["api_key"]})
        assert (response.status_code, response.json()["error"]["code"]) == (404, "job_not_found")
    response = await http.post(
        f"/v1/jobs/{job_id}/cancel", headers={"X-API-Key": theirs["api_key"]}
    )
    assert response.status_code == 404


async def test_cancel_publishes_a_cancel_request_until_the_job_ends(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(http)
    key, app_id = created["api_key"], uuid.UUID(created["app"]["id"])
    job_id = await submit(http, key)
    response = await http.post(f"/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key})
    assert response.status_code == 202
    topics = [t for (t,) in await rows(app, "SELECT topic FROM outbox ORDER BY id")]
    assert topics == ["job.requested", "job.cancel.requested"]

    await deliver(
        app, handlers.on_job_completed, saga_events(app_id, uuid.UUID(job_id))["completed"]
    )
    response = await http.post(f"/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "job_finished")


# --- the client library against the real gateway app ---------------------------------------------


async def test_client_library_round_trip(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with AsyncGenhubAdmin("http://gateway", "test-admin-token", transport=transport) as admin:
        created = await admin.create_app("Acme", "acme", plan="basic")
        assert (created.app.slug, created.app.plan, created.app.enabled) == ("acme", "basic", True)
        assert [a.slug for a in await admin.list_apps()] == ["acme"]
        second_key = await admin.create_key(created.app.id)
        with pytest.raises(GenhubError) as exc:
            await admin.create_app("Acme", "acme")
        assert (exc.value.status, exc.value.code) == (409, "slug_taken")

    async with AsyncGenhub("http://gateway", second_key, transport=transport) as client:
        balance = await client.grant_tokens("u:1", 50, "welcome", idempotency_key="g1")
        assert (balance.user_id, balance.available) == ("u:1", 50)
        assert (await client.get_user("u:1")).balance == 50
        job = await client.generate("u:1", "mock", "a fox", num_outputs=2, mock_fail=True)
        assert job.status == "queued" and not job.is_terminal
        fetched = await client.get_job(job.job_id)
        assert (fetched.job_id, fetched.user_id, fetched.model) == (job.job_id, "u:1", "mock")
        assert fetched.tokens is not None and fetched.tokens.charged == 0
        with pytest.raises(TimeoutError):
            await client.wait_for_job(job.job_id, timeout=0.3, poll_interval=0.05)
        with pytest.raises(GenhubError) as exc:
            await client.generate("u:1", "nope", "x")
        assert (exc.value.status, exc.value.code) == (422, "unknown_model")

    [(payload,)] = await rows(app, "SELECT payload FROM outbox")
    spec = parse_event(bytes(payload)).payload.spec
    assert spec.input.num_outputs == 2
    assert spec.input.provider_params == {"mock_fail": True}


async def test_concurrent_requests_with_one_idempotency_key_make_one_job(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    import asyncio

    created = await create_tenant(http)
    headers = {"X-API-Key": created["api_key"], "X-User-ID": "u1", "Idempotency-Key": "same"}
    responses = await asyncio.gather(
        *(http.post("/v1/generate", headers=headers, json=BODY) for _ in range(5))
    )
    # Each one either ran, replayed the winner, or was told the winner is still in flight.
    assert {r.status_code for r in responses} <= {202, 409}
    assert len({r.json()["job_id"] for r in responses if r.status_code == 202}) == 1
    assert all(
        r.json()["error"]["code"] == "idempotency_key_in_use"
        for r in responses
        if r.status_code == 409
    )
    assert len(await rows(app, "SELECT 1 FROM jobs")) == 1
    assert len(await rows(app, "SELECT 1 FROM outbox")) == 1


# --- idempotency keys ---------------------------------------------------------------------------


async def post_generate(
    http: httpx.AsyncClient, key: str, body: dict[str, Any] = BODY, **headers: str
) -> httpx.Response:
    return await http.post(
        "/v1/generate", headers={"X-API-Key": key, "X-User-ID": "u1", **headers}, json=body
    )


async def test_same_key_and_body_replays_the_first_answer(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    key = (await create_tenant(http))["api_key"]
    first = await post_generate(http, key, **{"Idempotency-Key": "k1"})
    # Same request, other key order and an explicit default: the same canonical body.
    reordered = {"priority": 5, "metadata": {"order": "A-1"}, **BODY}
    again = await post_generate(http, key, reordered, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["location"] == first.headers["location"]
    assert len(await rows(app, "SELECT 1 FROM jobs")) == 1
    assert len(await rows(app, "SELECT 1 FROM outbox")) == 1
    [(state, status, job_id)] = await rows(
        app, "SELECT state, response_status, job_id FROM idempotency_keys"
    )
    assert (state, status, str(job_id)) == ("completed", 202, first.json()["job_id"])


async def test_same_key_with_another_body_or_user_is_422(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    key = (await create_tenant(http))["api_key"]
    await submit(http, key, **{"Idempotency-Key": "k1"})
    other_body = {**BODY, "input": {"prompt": "a blue fox"}}
    for response in (
        await post_generate(http, key, other_body, **{"Idempotency-Key": "k1"}),
        await http.post(
            "/v1/generate",
            headers={"X-API-Key": key, "X-User-ID": "u2", "Idempotency-Key": "k1"},
            json=BODY,
        ),
    ):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await rows(app, "SELECT 1 FROM jobs")) == 1


async def test_keys_are_scoped_per_app(app: FastAPI, http: httpx.AsyncClient) -> None:
    mine = (await create_tenant(http, "mine"))["api_key"]
    theirs = (await create_tenant(http, "theirs"))["api_key"]
    a = await submit(http, mine, **{"Idempotency-Key": "k1"})
    b = await submit(http, theirs, **{"Idempotency-Key": "k1"})
    assert a != b
    assert len(await rows(app, "SELECT 1 FROM jobs")) == 2


async def hold_key(
    app: FastAPI, app_id: str, key: str, *, lease: timedelta, age: timedelta = timedelta(0)
) -> None:
    """Another replica's request in flight: an in_progress row with a lease."""
    async with app.state.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO idempotency_keys (app_id, key, request_hash, state, owner,"
                " locked_until, created_at) VALUES (:app, :key, :hash, 'in_progress',"
                " gen_random_uuid(), :until, :created)"
            ),
            {
                "app": uuid.UUID(app_id),
                "key": key,
                "hash": "",
                "until": datetime.now(UTC) + lease,
                "created": datetime.now(UTC) - age,
            },
        )


async def test_a_key_in_flight_is_409_until_its_lease_lapses(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    created = await create_tenant(http)
    key, app_id = created["api_key"], created["app"]["id"]
    await hold_key(app, app_id, "busy", lease=timedelta(minutes=1))
    response = await post_generate(http, key, **{"Idempotency-Key": "busy"})
    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "idempotency_key_in_use",
    )
    assert response.headers["retry-after"] == "1"
    assert await rows(app, "SELECT 1 FROM jobs") == []

    # Its holder died: once the lease is over, a retry takes the key over and runs.
    await hold_key(app, app_id, "dead", lease=timedelta(seconds=-1))
    await submit(http, key, **{"Idempotency-Key": "dead"})
    [(state,)] = await rows(app, "SELECT state FROM idempotency_keys WHERE key = 'dead'")
    assert state == "completed"


async def test_an_expired_key_is_ignored_and_pruned(app: FastAPI, http: httpx.AsyncClient) -> None:
    from genhub_gateway import services

    created = await create_tenant(http)
    key = created["api_key"]
    first = await submit(http, key, **{"Idempotency-Key": "old"})
    async with app.state.runtime.engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        )
    # Past 24 h the key is free again, even for another body.
    other = {**BODY, "input": {"prompt": "something else"}}
    second = await post_generate(http, key, other, **{"Idempotency-Key": "old"})
    assert second.status_code == 202 and second.json()["job_id"] != first

    await hold_key(app, created["app"]["id"], "stale", lease=timedelta(0), age=timedelta(days=2))
    async with app.state.runtime.uow() as uow:
        assert await services.prune_idempotency_keys(uow, timedelta(hours=24)) == 1
    assert [k for (k,) in await rows(app, "SELECT key FROM idempotency_keys")] == ["old"]


async def test_a_failed_request_gives_its_key_back(app: FastAPI, http: httpx.AsyncClient) -> None:
    key = (await create_tenant(http))["api_key"]
    unknown = {**BODY, "model": "nope"}
    response = await post_generate(http, key, unknown, **{"Idempotency-Key": "k1"})
    assert response.json()["error"]["code"] == "unknown_model"
    assert await rows(app, "SELECT 1 FROM idempotency_keys") == []
    await submit(http, key, **{"Idempotency-Key": "k1"})


async def test_grant_with_idempotency_key_replays_and_detects_reuse(
    http: httpx.AsyncClient, upstreams: Any
) -> None:
    key = (await create_tenant(http))["api_key"]
    headers = {"X-API-Key": key, "Idempotency-Key": "g1"}
    grant = {"amount": 25, "reason": "purchase"}
    first = await http.post("/v1/users/u1/tokens", headers=headers, json=grant)
    again = await http.post("/v1/users/u1/tokens", headers=headers, json=grant)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    grant_calls = [r for r in upstreams.requests if r.url.path.endswith("/grants")]
    # Forwarded namespaced and hashed, so it can never collide with the welcome grant's key.
    assert len(grant_calls) == 1
    assert json.loads(grant_calls[0].content)["idempotency_key"] == billing_key("g1")
    assert billing_key("g1") != billing_key("g2") and billing_key("g1").startswith("app:")
    other = await http.post("/v1/users/u2/tokens", headers=headers, json=grant)
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")


# --- Prefer: wait -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefer", ["wait=0", "wait=61", "wait=abc", "wait=-1", "wait"])
async def test_invalid_prefer_wait_is_400(
    app: FastAPI, http: httpx.AsyncClient, prefer: str
) -> None:
    key = (await create_tenant(http))["api_key"]
    response = await post_generate(http, key, Prefer=prefer)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_prefer")
    assert await rows(app, "SELECT 1 FROM jobs") == []


async def finish_soon(app: FastAPI, handler: Any, make_event: Any) -> None:
    """Project an event once the job row exists, as the Kafka consumer would meanwhile."""
    import asyncio

    for _ in range(100):
        found = await rows(app, "SELECT app_id, job_id FROM jobs")
        if found:
            await asyncio.sleep(0.2)
            await deliver(app, handler, make_event(*found[0]))
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no job appeared")


async def test_prefer_wait_returns_the_finished_job(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any
) -> None:
    import asyncio

    key = (await create_tenant(http))["api_key"]

    def completed(app_id: uuid.UUID, job_id: uuid.UUID) -> Any:
        upstreams.files[str(job_id)] = [{"index": 0, "url": "http://minio/0.png?sig=x"}]
        return saga_events(app_id, job_id)["completed"]

    response, _ = await asyncio.gather(
        post_generate(http, key, Prefer="respond-async, wait=5"),
        finish_soon(app, handlers.on_job_completed, completed),
    )
    assert response.status_code == 200, response.text
    assert response.headers["preference-applied"] == "wait=5"
    job = response.json()
    assert job["status"] == "succeeded"
    assert job["outputs"][0]["url"] == "http://minio/0.png?sig=x"
    assert response.headers["location"] == f"/v1/jobs/{job['job_id']}"


async def test_prefer_wait_on_a_job_refused_for_tokens_is_402(
    app: FastAPI, http: httpx.AsyncClient
) -> None:
    import asyncio

    key = (await create_tenant(http))["api_key"]

    def rejected(app_id: uuid.UUID, job_id: uuid.UUID) -> Any:
        return TokensRejected.new(
            app_id=app_id,
            job_id=job_id,
            payload=TokensRejectedPayload(
                user_id="u1",
                reason=RejectReason.INSUFFICIENT_TOKENS,
                message="needs 10 tokens, has 3",
                balance=3,
                required=10,
            ),
        )

    response, _ = await asyncio.gather(
        post_generate(http, key, **{"Prefer": "wait=5", "Idempotency-Key": "w1"}),
        finish_soon(app, handlers.on_tokens_rejected, rejected),
    )
    assert response.status_code == 402, response.text
    body = response.json()
    assert body["code"] == body["error"]["code"] == "insufficient_tokens"
    assert (body["balance"], body["required"]) == (3, 10)
    assert body["error"]["details"] == {"balance": 3, "required": 10}
    assert response.headers["preference-applied"] == "wait=5"

    # A retry with the same key replays onto the same job, waiting again.
    again = await post_generate(http, key, **{"Prefer": "wait=5", "Idempotency-Key": "w1"})
    assert again.status_code == 402 and again.json()["job_id"] == body["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await rows(app, "SELECT 1 FROM jobs")) == 1


async def test_prefer_wait_times_out_with_202(app: FastAPI, http: httpx.AsyncClient) -> None:
    key = (await create_tenant(http))["api_key"]
    response = await post_generate(http, key, Prefer="wait=0.3")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert response.headers["preference-applied"] == "wait=0.3"
