"""The client's methods for uploads, files, webhooks, batch grants, ledger and the admin
audit log, against a fake gateway (httpx.MockTransport): what each sends and parses."""

import json
from typing import Any

import httpx
import pytest
from genhub_client import AsyncGenhub, AsyncGenhubAdmin, GenhubError

JOB = "0b9f4c3e-3f7e-4a55-9d44-5a4f3b1c2d10"


class Recorder:
    def __init__(self, answers: dict[tuple[str, str], httpx.Response]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.get(
            (request.method, request.url.path),
            httpx.Response(404, json={"error": {"code": "not_found", "message": "?"}}),
        )


def _client(recorder: Recorder) -> AsyncGenhub:
    return AsyncGenhub("http://gw", "gh_live_k", transport=httpx.MockTransport(recorder))


async def test_upload_sends_raw_bytes_and_returns_the_key() -> None:
    rec = Recorder(
        {("POST", "/v1/uploads"): httpx.Response(201, json={"key": "inputs/a/x.png", "width": 2})}
    )
    async with _client(rec) as client:
        upload = await client.upload(b"\x89PNG", filename="x.png")
    assert (upload.key, upload.width) == ("inputs/a/x.png", 2)
    [sent] = rec.requests
    assert sent.content == b"\x89PNG" and sent.url.params["filename"] == "x.png"


async def test_generate_sends_images_cache_and_enhance_prompt() -> None:
    rec = Recorder(
        {("POST", "/v1/generate"): httpx.Response(202, json={"job_id": JOB, "status": "queued"})}
    )
    async with _client(rec) as client:
        await client.generate(
            "u1", "mock", "a cat", images=["inputs/a/x.png"], cache=False, enhance_prompt=True
        )
    body = json.loads(rec.requests[0].content)
    assert body["input"]["images"] == ["inputs/a/x.png"]
    assert (body["cache"], body["enhance_prompt"]) == (False, True)
    assert "priority" not in body and "webhook_url" not in body


async def test_file_url_reads_the_redirect_without_following_it() -> None:
    rec = Recorder(
        {
            ("GET", f"/v1/files/{JOB}/0"): httpx.Response(
                302, headers={"Location": "http://s3/o.png?sig=1"}
            )
        }
    )
    async with _client(rec) as client:
        assert await client.file_url(JOB, 0, download=True) == "http://s3/o.png?sig=1"
        with pytest.raises(GenhubError) as missing:
            await client.file_url(JOB, 5)
    assert missing.value.code == "not_found"
    assert rec.requests[0].url.params["download"] == "1"


async def test_batch_grants_ledger_and_webhooks() -> None:
    results = [{"user_id": "a", "transfer_id": "t1", "balance": 5, "available": 5}]
    rec = Recorder(
        {
            ("POST", "/v1/users/tokens/batch"): httpx.Response(201, json={"results": results}),
            ("GET", "/v1/users/u@1/ledger"): httpx.Response(
                200, json={"entries": [], "next_cursor": None}
            ),
            ("POST", "/v1/webhooks/endpoints"): httpx.Response(
                201, json={"endpoint": {"id": "e1"}, "secret": "whsec_1"}
            ),
            ("POST", "/v1/webhooks/endpoints/e1/rotate-secret"): httpx.Response(
                200, json={"secret": "whsec_2"}
            ),
            ("GET", "/v1/webhooks/deliveries"): httpx.Response(
                200, json={"deliveries": [], "next_cursor": None}
            ),
            ("DELETE", "/v1/webhooks/endpoints/e1"): httpx.Response(204),
        }
    )
    async with _client(rec) as client:
        granted = await client.grant_tokens_batch(
            [{"user_id": "a", "amount": 5, "reason": "r"}], idempotency_key="b1"
        )
        assert granted[0].transfer_id == "t1"
        assert (await client.get_ledger("u@1", limit=3))["entries"] == []
        created = await client.create_webhook_endpoint("https://h.example/x")
        assert created["secret"] == "whsec_1"
        assert await client.rotate_webhook_secret("e1") == "whsec_2"
        await client.list_deliveries(status="failed", limit=5)
        await client.delete_webhook_endpoint("e1")
    batch, ledger, _, _, deliveries, _ = rec.requests
    assert batch.headers["idempotency-key"] == "b1"
    assert ledger.url.raw_path.decode() == "/v1/users/u%401/ledger?limit=3"
    assert dict(deliveries.url.params) == {"status": "failed", "limit": "5"}


async def test_admin_audit_and_tokens() -> None:
    entry: dict[str, Any] = {
        "id": 3,
        "at": "2026-11-21T10:00:00Z",
        "actor": "admin:bootstrap",
        "action": "app.update",
        "target_type": "app",
        "target_id": "a1",
        "app_id": "a1",
        "before": {"name": "A"},
        "after": {"name": "B"},
        "request_id": "r1",
    }
    rec = Recorder(
        {
            ("GET", "/admin/audit"): httpx.Response(
                200, json={"entries": [entry], "next_cursor": "n"}
            ),
            ("POST", "/admin/tokens"): httpx.Response(
                201, json={"token": "gh_admin_x", "admin_token": {"id": "t1"}}
            ),
        }
    )
    async with AsyncGenhubAdmin("http://gw", "root", transport=httpx.MockTransport(rec)) as admin:
        page = await admin.audit(app_id="a1", action="app.update")
        assert page.entries[0].after == {"name": "B"} and page.next_cursor == "n"
        assert await admin.create_admin_token("ops") == ("gh_admin_x", "t1")
    assert dict(rec.requests[0].url.params) == {
        "app_id": "a1",
        "action": "app.update",
        "limit": "50",
    }
