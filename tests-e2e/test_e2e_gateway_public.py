"""The gateway's public API end to end through the client library: uploads and image-to-image,
output files (302 to presigned URLs), welcome grant, batch grants, ledger and user summary,
webhook endpoints and deliveries, audit log, key rotation and revocation, tenant isolation."""

import io
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from e2e_receiver import WebhookReceiver
from e2e_support import Endpoints, Tenant, eventually, new_app, settled_job
from genhub_client import AsyncGenhub, AsyncGenhubAdmin, GenhubError
from PIL import Image

MOCK_PRICE = 10


def _png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_upload_image_to_image_and_files(tenant: Tenant, user_id: str) -> None:
    client = tenant.client
    upload = await client.upload(_png(), filename="input.png")
    assert upload.key.startswith(f"inputs/{tenant.app_id}/")
    assert (upload.width, upload.height, upload.content_type) == (64, 64, "image/png")
    assert (await client.get_upload(upload.key)).key == upload.key

    await client.grant_tokens(user_id, 50, "e2e grant")
    accepted = await client.generate(user_id, "mock", "recolour it", images=[upload.key])
    job = await settled_job(client, accepted.job_id, timeout=90)
    assert job.status == "succeeded", job

    inline = await client.file_url(job.job_id, 0)
    attachment = await client.file_url(job.job_id, 0, download=True)
    query = parse_qs(urlsplit(attachment).query)
    assert "attachment" in query["response-content-disposition"][0]
    assert "response-content-disposition" not in parse_qs(urlsplit(inline).query)
    image = await client.download(inline)
    assert image.startswith(b"\x89PNG") and len(image) == job.outputs[0].bytes

    with pytest.raises(GenhubError) as unknown:
        await client.generate(user_id, "mock", "x", images=[f"inputs/{tenant.app_id}/nope.png"])
    assert (unknown.value.status, unknown.value.code) == (422, "unknown_upload")
    with pytest.raises(GenhubError) as not_image:
        await client.upload(b"plain text, not an image")
    assert not_image.value.status == 415


async def test_tenant_isolation_for_jobs_users_ledger_uploads_files(
    tenant: Tenant, other_tenant: Tenant, user_id: str, endpoints: Endpoints
) -> None:
    upload = await tenant.client.upload(_png((1, 2, 3)))
    await tenant.client.grant_tokens(user_id, 30, "e2e grant")
    accepted = await tenant.client.generate(user_id, "mock", "private")
    job = await settled_job(tenant.client, accepted.job_id, timeout=90)
    assert job.status == "succeeded", job

    other = {"X-API-Key": other_tenant.api_key}
    async with httpx.AsyncClient(base_url=endpoints.gateway, headers=other, timeout=10) as http:
        for method, path, code in [
            ("GET", f"/v1/jobs/{job.job_id}", "job_not_found"),
            ("POST", f"/v1/jobs/{job.job_id}/cancel", "job_not_found"),
            ("GET", f"/v1/files/{job.job_id}/0", "job_not_found"),
            ("GET", f"/v1/files/{job.job_id}/0?download=1", "job_not_found"),
            ("GET", f"/v1/uploads/{upload.key}", "upload_not_found"),
        ]:
            response = await http.request(method, path)
            assert (response.status_code, response.json()["error"]["code"]) == (404, code), path
        listed = await http.get("/v1/jobs", params={"user_id": user_id})
        assert listed.json()["jobs"] == []
        theirs = await http.post(
            "/v1/generate",
            headers={"X-User-ID": user_id},
            json={"model": "mock", "input": {"prompt": "x", "images": [upload.key]}},
        )
        assert theirs.json()["error"]["code"] == "unknown_upload"
        # The same external id in another app is another user, unknown there: nothing leaks.
        for path in (f"/v1/users/{user_id}", f"/v1/users/{user_id}/ledger"):
            answer = await http.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "user_not_found"
    summary = await other_tenant.client.register_user(user_id)
    assert (summary.balance, summary.jobs.total if summary.jobs else None) == (0, 0)
    mine = await tenant.client.get_user(user_id)
    assert mine.jobs is not None and mine.jobs.by_status == {"succeeded": 1}
    assert mine.jobs.tokens_charged == MOCK_PRICE and mine.balance == 20


async def test_key_rotation_and_revocation(
    admin: AsyncGenhubAdmin, tenant: Tenant, endpoints: Endpoints
) -> None:
    [old] = (await admin.get_app(tenant.app_id)).keys
    new = await admin.create_key_with_id(tenant.app_id)
    async with AsyncGenhub(endpoints.gateway, new.api_key) as rotated:
        assert await rotated.list_models()  # both keys work during the rotation
        assert await tenant.client.list_models()
        await admin.revoke_key(tenant.app_id, old.id)
        with pytest.raises(GenhubError) as revoked:
            await tenant.client.list_models()
        assert (revoked.value.status, revoked.value.code) == (401, "invalid_api_key")
        assert await rotated.list_models()

        await admin.update_app(tenant.app_id, enabled=False)
        with pytest.raises(GenhubError) as disabled:
            await rotated.list_models()
        assert (disabled.value.status, disabled.value.code) == (403, "app_disabled")
    keys = {k.id: k for k in (await admin.get_app(tenant.app_id)).keys}
    assert keys[old.id].revoked_at is not None and keys[new.key.id].revoked_at is None

    page = await admin.audit(app_id=tenant.app_id)
    actions = [e.action for e in page.entries]
    assert actions[:3] == ["app.update", "key.revoke", "key.create"]
    assert page.entries[0].before and page.entries[0].before["enabled"] is True


async def test_welcome_grant_batch_grants_and_ledger(
    admin: AsyncGenhubAdmin, endpoints: Endpoints, user_id: str
) -> None:
    slug = f"e2e-welcome-{secrets.token_hex(4)}"
    created = await new_app(admin, slug, welcome_grant=25)
    async with AsyncGenhub(endpoints.gateway, created.api_key) as client:
        first = await client.generate(user_id, "mock", "hello", wait=30)
        assert first.status == "succeeded", first
        await client.generate(user_id, "mock", "again", wait=30)
        user = await client.get_user(user_id)
        assert (user.balance, user.reserved) == (25 - 2 * MOCK_PRICE, 0)

        key = f"batch-{secrets.token_hex(4)}"
        grants = [
            {"user_id": user_id, "amount": 100, "reason": "promo"},
            {"user_id": f"{user_id}-b", "amount": 40, "reason": "promo"},
        ]
        results = await client.grant_tokens_batch(grants, idempotency_key=key)
        again = await client.grant_tokens_batch(grants, idempotency_key=key)
        assert [r.transfer_id for r in again] == [r.transfer_id for r in results]
        assert (await client.get_user(user_id)).balance == 5 + 100
        # The second user is new: the welcome grant came first, once.
        assert (await client.get_user(f"{user_id}-b")).balance == 25 + 40

        with pytest.raises(GenhubError) as bad:
            await client.grant_tokens_batch(
                [
                    {"user_id": user_id, "amount": 1, "reason": "ok"},
                    {"user_id": user_id, "amount": 0, "reason": "bad"},
                ]
            )
        assert bad.value.status == 422
        assert (await client.get_user(user_id)).balance == 105  # all or nothing

        ledger = await client.get_ledger(user_id, limit=50)
        kinds = [e["kind"] for e in ledger["entries"]]
        assert kinds.count("grant") >= 2 and len(kinds) >= 4

    audited = await admin.audit(app_id=created.app.id, action="tokens.grant")
    actors = {e.actor.split("/")[0] for e in audited.entries}
    assert actors == {"system:welcome", f"app:{slug}"}
    assert len(audited.entries) == 4  # two welcome grants, two batch grants


async def test_webhook_endpoints_and_deliveries(
    tenant: Tenant, user_id: str, receiver: WebhookReceiver
) -> None:
    client = tenant.client
    created = await client.create_webhook_endpoint(
        receiver.url("/endpoint"), event_types=["job.succeeded"], description="e2e"
    )
    endpoint = created["endpoint"]
    assert created["secret"].startswith("whsec_") and endpoint["enabled"] is True
    assert [e["id"] for e in await client.list_webhook_endpoints()] == [endpoint["id"]]
    assert (await client.rotate_webhook_secret(endpoint["id"])).startswith("whsec_")
    with pytest.raises(GenhubError) as refused:
        await client.create_webhook_endpoint("http://169.254.169.254/latest")
    assert refused.value.code == "url_refused"

    await client.grant_tokens(user_id, 20, "e2e grant")
    job = await client.generate(user_id, "mock", "notify me")
    await settled_job(client, job.job_id)
    page = await eventually(
        lambda: client.list_deliveries(job_id=job.job_id),
        lambda p: any(d.get("status") == "delivered" for d in p["deliveries"]),
    )
    delivery = next(d for d in page["deliveries"] if d.get("status") == "delivered")
    detail = await client.get_delivery(delivery["id"])
    assert detail["id"] == delivery["id"]
    replay = await client.replay_delivery(delivery["id"])
    assert replay["delivery_id"]

    updated = await client.update_webhook_endpoint(endpoint["id"], enabled=False)
    assert (updated.get("endpoint") or updated)["enabled"] is False
    await client.delete_webhook_endpoint(endpoint["id"])
    assert await client.list_webhook_endpoints() == []


async def test_admin_proxies_reach_billing_and_the_orchestrator(
    admin: AsyncGenhubAdmin, tenant: Tenant, endpoints: Endpoints
) -> None:
    # The app's plan was handed to billing when the app was created (conftest: "pro").
    assert (await admin.billing_settings(tenant.app_id))["plan"] == "pro"
    changed = await admin.update_billing_settings(tenant.app_id, free_daily_quota=2)
    assert changed["free_daily_quota"] == 2
    async with httpx.AsyncClient(
        base_url=endpoints.gateway,
        headers={"Authorization": f"Bearer {endpoints.admin_token}"},
        timeout=10,
    ) as http:
        models = (await http.get("/admin/catalog/models")).json()["models"]
        assert "mock" in {m["name"] for m in models}
        plans = (await http.get("/admin/plans")).json()["plans"]
        assert {p["plan"] for p in plans} >= {"free", "pro"}
        refused = await http.put(
            f"/admin/apps/{tenant.app_id}/billing", json={"free_daily_quota": -5}
        )
        assert refused.status_code == 422 and refused.json()["error"]["details"]
    entries = (await admin.audit(app_id=tenant.app_id, action="billing.settings.update")).entries
    # Newest first; the older one is the e2e fixture turning plan allocations off.
    assert [e.after["request"] if e.after else None for e in entries] == [
        {"free_daily_quota": 2}, {"monthly_allocations": False}
    ]  # fmt: skip

    # An admin token made through the API works, is audited by name, and can be revoked.
    token, token_id = await admin.create_admin_token(f"e2e-{secrets.token_hex(3)}")
    async with AsyncGenhubAdmin(endpoints.gateway, token) as scoped:
        await scoped.update_app(tenant.app_id, name="renamed by token")
        await admin.revoke_admin_token(token_id)
        with pytest.raises(GenhubError) as revoked:
            await scoped.list_apps()
    assert revoked.value.code == "invalid_admin_token"
    [rename] = (await admin.audit(app_id=tenant.app_id, action="app.update")).entries
    assert rename.actor.startswith("admin:e2e-") and rename.after
    assert rename.after["name"] == "renamed by token"
