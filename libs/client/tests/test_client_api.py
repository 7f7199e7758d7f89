"""AsyncGenhub / AsyncGenhubAdmin against a fake server (httpx.MockTransport)."""

import json
from typing import Any

import httpx
import pytest
from genhub_client import AsyncGenhub, AsyncGenhubAdmin, GenhubError, Job, JobPage

JOB_ID = "0b9f4c3e-3f7e-4a55-9d44-5a4f3b1c2d10"


class FakeGateway:
    def __init__(self, statuses: list[str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses = statuses or ["queued", "running", "succeeded"]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.url.host == "objects.example.com":
            return httpx.Response(200, content=b"PNGDATA")
        if path == "/v1/jobs":
            page = {"jobs": [job_body("queued")], "next_cursor": "c2"}
            if request.url.params.get("cursor") == "c2":
                page = {"jobs": [], "next_cursor": None}
            return httpx.Response(200, json=page)
        if path == "/v1/generate":
            return httpx.Response(202, json={"job_id": JOB_ID, "status": "queued"})
        if path == f"/v1/jobs/{JOB_ID}":
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            return httpx.Response(200, json=job_body(status))
        if path == "/v1/users/u%401/tokens" or path == "/v1/users/u@1/tokens":
            return httpx.Response(
                201,
                json={
                    "user_id": "u@1",
                    "balance": 5,
                    "reserved": 0,
                    "available": 5,
                    "transfer_id": "t",
                },
            )
        if path == "/admin/apps" and request.method == "POST":
            return httpx.Response(
                201,
                json={
                    "app": {"id": "a1", "name": "A", "slug": "a", "plan": "pro", "enabled": True},
                    "api_key": "gh_live_x",
                    "key": {"id": "k1"},
                    "webhook_secret": "whsec_x",
                },
            )
        if path == "/admin/apps/a1/keys":
            return httpx.Response(201, json={"api_key": "gh_live_y", "key": {"id": "k2"}})
        if path == "/admin/apps":
            app = {"id": "a1", "name": "A", "slug": "a", "plan": "pro", "enabled": True, "keys": []}
            return httpx.Response(200, json={"apps": [app]})
        if path == "/teapot":
            return httpx.Response(418, text="short and stout")
        error = {"code": "job_not_found", "message": "No such job."}
        return httpx.Response(404, json={"status": 404, "code": "job_not_found", "error": error})


def job_body(status: str) -> dict[str, Any]:
    done = status == "succeeded"
    return {
        "job_id": JOB_ID,
        "status": status,
        "model": "mock",
        "user_id": "u1",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:01Z",
        "outputs": [
            {"index": 0, "url": "https://objects.example.com/o/0.png?X-Amz-Signature=s",
             "content_type": "image/png", "width": 512, "height": 512, "bytes": 7}
        ] if done else [],
        "error": None,
        "tokens": {"reserved": 10, "charged": 10 if done else 0, "refunded": 0},
        "provider": "mock",
        "attempts": 1,
        "metadata": {"order": "A-1"},
        "future_field": "ignored",
    }  # fmt: skip


@pytest.fixture
def fake() -> FakeGateway:
    return FakeGateway()


def client(fake: FakeGateway) -> AsyncGenhub:
    return AsyncGenhub(
        "http://gw:8080/", "gh_live_secret", transport=httpx.MockTransport(fake.handle)
    )


async def test_generate_sends_headers_and_input(fake: FakeGateway) -> None:
    async with client(fake) as c:
        job = await c.generate(
            "u1", "mock", "a fox", num_outputs=2, metadata={"a": 1}, idempotency_key="k", seed=7
        )
    assert (job.job_id, job.status, job.is_terminal) == (JOB_ID, "queued", False)
    request = fake.requests[0]
    assert str(request.url) == "http://gw:8080/v1/generate"
    assert request.headers["x-api-key"] == "gh_live_secret"
    assert request.headers["x-user-id"] == "u1"
    assert request.headers["idempotency-key"] == "k"
    assert json.loads(request.content) == {
        "model": "mock",
        "input": {"prompt": "a fox", "num_outputs": 2, "aspect_ratio": "1:1", "seed": 7},
        "metadata": {"a": 1},
    }


async def test_wait_for_job_polls_until_terminal_and_download_never_sends_the_key(
    fake: FakeGateway,
) -> None:
    async with client(fake) as c:
        job = await c.wait_for_job(JOB_ID, poll_interval=0.01)
        assert isinstance(job, Job) and job.status == "succeeded" and job.is_terminal
        assert job.tokens is not None and job.tokens.charged == 10
        assert job.outputs[0].width == 512
        assert job.metadata == {"order": "A-1"}
        data = await c.download(job.outputs[0].url or "")
    assert data == b"PNGDATA"
    assert len([r for r in fake.requests if r.url.path.startswith("/v1/jobs/")]) == 3
    download = fake.requests[-1]
    assert download.url.host == "objects.example.com"
    assert "x-api-key" not in download.headers


async def test_wait_for_job_times_out() -> None:
    fake = FakeGateway(statuses=["running"])
    async with client(fake) as c:
        with pytest.raises(TimeoutError):
            await c.wait_for_job(JOB_ID, timeout=0.1, poll_interval=0.02)


async def test_errors_carry_status_code_message_and_body(fake: FakeGateway) -> None:
    async with client(fake) as c:
        with pytest.raises(GenhubError) as exc:
            await c.get_job("nope")
        assert (exc.value.status, exc.value.code, exc.value.message) == (
            404,
            "job_not_found",
            "No such job.",
        )
        assert exc.value.body["status"] == 404
        with pytest.raises(GenhubError) as exc:
            await c.download("/teapot")
        assert (exc.value.status, exc.value.code, exc.value.body) == (
            418,
            "http_error",
            "short and stout",
        )


async def test_grant_tokens_escapes_the_user_id(fake: FakeGateway) -> None:
    async with client(fake) as c:
        balance = await c.grant_tokens("u@1", 5, "gift", idempotency_key="g")
    assert (balance.user_id, balance.available) == ("u@1", 5)
    assert fake.requests[0].url.raw_path == b"/v1/users/u%401/tokens"
    assert fake.requests[0].headers["idempotency-key"] == "g"


async def test_admin_client(fake: FakeGateway) -> None:
    transport = httpx.MockTransport(fake.handle)
    async with AsyncGenhubAdmin("http://gw:8080", "adm", transport=transport) as admin:
        created = await admin.create_app("A", "a", plan="pro", webhook_url="https://h.example/x")
        assert (created.app.id, created.api_key, created.webhook_secret) == (
            "a1",
            "gh_live_x",
            "whsec_x",
        )
        assert await admin.create_key("a1") == "gh_live_y"
        assert [a.slug for a in await admin.list_apps()] == ["a"]
    assert fake.requests[0].headers["authorization"] == "Bearer adm"
    assert json.loads(fake.requests[0].content) == {
        "name": "A", "slug": "a", "plan": "pro", "webhook_url": "https://h.example/x"
    }  # fmt: skip


async def test_generate_with_wait_sends_prefer_and_returns_the_finished_job() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=job_body("succeeded"))

    async with AsyncGenhub("http://gw", "k", transport=httpx.MockTransport(handle)) as client:
        job = await client.generate("u1", "mock", "x", wait=30, idempotency_key="i1")
    assert job.status == "succeeded" and job.is_terminal
    assert seen[0].headers["prefer"] == "wait=30"
    assert seen[0].headers["idempotency-key"] == "i1"
    assert seen[0].extensions["timeout"]["read"] >= 40  # longer than the wait


async def test_generate_with_wait_raises_insufficient_tokens_with_balance() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        error = {"code": "insufficient_tokens", "message": "needs 10 tokens, has 3"}
        body = {"code": "insufficient_tokens", "error": error, "balance": 3, "required": 10}
        return httpx.Response(402, json=body)

    async with AsyncGenhub("http://gw", "k", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(GenhubError) as exc:
            await client.generate("u1", "mock", "x", wait=5)
    assert (exc.value.status, exc.value.code) == (402, "insufficient_tokens")
    assert (exc.value.body["balance"], exc.value.body["required"]) == (3, 10)


async def test_list_jobs_sends_filters_and_follows_the_cursor(fake: FakeGateway) -> None:
    async with client(fake) as c:
        page = await c.list_jobs(status="queued", user_id="u@1", model="mock", limit=5)
        assert isinstance(page, JobPage)
        assert [j.job_id for j in page.jobs] == [JOB_ID] and page.next_cursor == "c2"
        last = await c.list_jobs(cursor=page.next_cursor)
        assert (last.jobs, last.next_cursor) == ([], None)
    first, second = fake.requests
    assert first.method == "GET" and first.url.path == "/v1/jobs"
    assert dict(first.url.params) == {
        "limit": "5",
        "status": "queued",
        "user_id": "u@1",
        "model": "mock",
    }
    assert dict(second.url.params) == {"limit": "20", "cursor": "c2"}
