"""The public and admin faces of other services' resources, against the test database with
the upstream services answered by httpx.MockTransport (the shapes of the agreed internal APIs):
what is forwarded where (always scoped to the caller's app), and what comes back."""

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from .test_gateway_db import ADMIN, create_tenant, rows, submit

pytestmark = pytest.mark.usefixtures("clean_db")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _calls(upstreams: Any, fragment: str) -> list[httpx.Request]:
    return [r for r in upstreams.requests if fragment in r.url.path]


@pytest.fixture
async def tenant(http: httpx.AsyncClient) -> dict[str, Any]:
    created = await create_tenant(http, slug="proxied")
    return {"id": created["app"]["id"], "headers": {"X-API-Key": created["api_key"]}}


async def test_uploads_raw_and_multipart_go_to_storage_for_this_app(
    http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    def store(request: httpx.Request, m: re.Match[str]) -> httpx.Response:
        key = f"inputs/{m[1]}/{uuid.uuid4()}.png"
        return httpx.Response(
            201,
            json={
                "key": key,
                "content_type": "image/png",
                "width": 1,
                "height": 1,
                "bytes": len(request.content),
                "sha256": "0" * 64,
                "expires_at": "2026-12-01T00:00:00Z",
                "filename": request.url.params.get("filename"),
            },
        )

    upstreams.routes.append(("POST", r"/internal/apps/([^/]+)/uploads", store))
    raw = await http.post(
        "/v1/uploads?filename=cat.png",
        headers={**tenant["headers"], "Content-Type": "image/png", "X-User-ID": "u@1"},
        content=PNG,
    )
    assert raw.status_code == 201, raw.text
    assert raw.json()["key"].startswith(f"inputs/{tenant['id']}/")
    multipart = await http.post(
        "/v1/uploads", headers=tenant["headers"], files={"file": ("dog.png", PNG, "image/png")}
    )
    assert multipart.status_code == 201, multipart.text
    [first, second] = _calls(upstreams, "/uploads")
    assert first.url.path == second.url.path == f"/internal/apps/{tenant['id']}/uploads"
    assert first.content == second.content == PNG  # the bytes, not the multipart envelope
    assert (first.url.params["filename"], second.url.params["filename"]) == ("cat.png", "dog.png")
    assert first.url.params["user_id"] == "u@1" and "user_id" not in second.url.params

    empty = await http.post("/v1/uploads", headers=tenant["headers"], content=b"")
    assert (empty.status_code, empty.json()["error"]["code"]) == (422, "invalid_upload")


async def test_storage_refusals_keep_their_status_and_code(
    http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    upstreams.routes.append(
        (
            "POST",
            r"/internal/apps/[^/]+/uploads",
            lambda r, m: httpx.Response(
                415,
                json={"error": {"code": "unsupported_media_type", "message": "not an image"}},
            ),
        )
    )
    response = await http.post("/v1/uploads", headers=tenant["headers"], content=b"text")
    assert (response.status_code, response.json()["error"]["code"]) == (
        415,
        "unsupported_media_type",
    )


async def test_upload_limit_is_413(
    app: FastAPI, http: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    app.state.gateway.settings.max_upload_bytes = 100
    response = await http.post("/v1/uploads", headers=tenant["headers"], content=b"x" * 101)
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")


async def test_input_images_must_be_existing_uploads_of_this_app(
    http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    mine = f"inputs/{tenant['id']}/known.png"
    upstreams.routes.append(
        (
            "GET",
            r"/internal/apps/([^/]+)/uploads/(.+)",
            lambda r, m: (
                httpx.Response(200, json={"key": m[2]})
                if m[2] == mine
                else httpx.Response(404, json={"error": {"code": "not_found"}})
            ),
        )
    )
    headers = {**tenant["headers"], "X-User-ID": "u1"}

    def body(*images: str) -> dict[str, Any]:
        return {"model": "mock", "input": {"prompt": "x", "images": list(images)}}

    ok = await http.post("/v1/generate", headers=headers, json=body(mine))
    assert ok.status_code == 202, ok.text
    missing = await http.post(
        "/v1/generate", headers=headers, json=body(f"inputs/{tenant['id']}/gone.png")
    )
    assert (missing.status_code, missing.json()["error"]["code"]) == (422, "unknown_upload")
    assert missing.json()["error"]["details"][0]["field"] == "body.input.images.0"
    got = await http.get(f"/v1/uploads/{mine}", headers=tenant["headers"])
    assert got.status_code == 200 and got.json()["key"] == mine
    other = await http.get(f"/v1/uploads/inputs/{uuid.uuid4()}/x.png", headers=tenant["headers"])
    assert (other.status_code, other.json()["error"]["code"]) == (404, "upload_not_found")


async def test_files_redirect_to_a_fresh_presigned_url(
    http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    job_id = await submit(http, tenant["headers"]["X-API-Key"])

    def url(request: httpx.Request, m: re.Match[str]) -> httpx.Response:
        if m[3] != "0":
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})
        disposition = "attachment" if request.url.params["download"] == "true" else "inline"
        return httpx.Response(
            200, json={"url": f"http://s3.local/o.png?d={disposition}", "expires_at": "x"}
        )

    upstreams.routes.append(("GET", r"/internal/apps/([^/]+)/jobs/([^/]+)/files/(\d+)/url", url))
    view = await http.get(f"/v1/files/{job_id}/0", headers=tenant["headers"])
    assert view.status_code == 302
    assert view.headers["location"] == "http://s3.local/o.png?d=inline"
    assert view.headers["cache-control"] == "no-store"
    download = await http.get(f"/v1/files/{job_id}/0?download=1", headers=tenant["headers"])
    assert download.headers["location"].endswith("d=attachment")
    missing = await http.get(f"/v1/files/{job_id}/3", headers=tenant["headers"])
    assert missing.status_code == 404
    unknown = await http.get(f"/v1/files/{uuid.uuid4()}/0", headers=tenant["headers"])
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "job_not_found")
    [first, *_] = _calls(upstreams, "/files/")
    assert first.url.path == f"/internal/apps/{tenant['id']}/jobs/{job_id}/files/0/url"


async def test_webhook_endpoints_and_deliveries_are_forwarded_to_the_notifier(
    http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    endpoint = {
        "id": str(uuid.uuid4()),
        "url": "https://hooks.example.com/a",
        "event_types": ["job.succeeded"],
        "enabled": True,
    }
    upstreams.routes += [
        (
            "POST",
            r"/internal/apps/[^/]+/endpoints",
            lambda r, m: httpx.Response(201, json={"endpoint": endpoint, "secret": "whsec_x"}),
        ),
        (
            "GET",
            r"/internal/apps/[^/]+/endpoints",
            lambda r, m: httpx.Response(200, json={"endpoints": [endpoint]}),
        ),
        (
            "PATCH",
            r"/internal/apps/[^/]+/endpoints/[^/]+",
            lambda r, m: httpx.Response(
                200, json={"endpoint": {**endpoint, **json.loads(r.content)}}
            ),
        ),
        (
            "DELETE",
            r"/internal/apps/[^/]+/endpoints/[^/]+",
            lambda r, m: httpx.Response(204),
        ),
        (
            "POST",
            r"/internal/apps/[^/]+/endpoints/[^/]+/rotate-secret",
            lambda r, m: httpx.Response(200, json={"secret": "whsec_new"}),
        ),
        (
            "GET",
            r"/internal/apps/[^/]+/deliveries",
            lambda r, m: httpx.Response(200, json={"deliveries": [], "next_cursor": None}),
        ),
        (
            "POST",
            r"/internal/apps/[^/]+/deliveries/[^/]+/replay",
            lambda r, m: httpx.Response(202, json={"delivery_id": "d1"}),
        ),
        (
            "GET",
            r"/internal/apps/[^/]+/deliveries/[^/]+",
            lambda r, m: httpx.Response(404, json={"error": {"code": "not_found", "message": "?"}}),
        ),
    ]
    h = tenant["headers"]
    created = await http.post(
        "/v1/webhooks/endpoints",
        headers=h,
        json={"url": "https://hooks.example.com/a", "event_types": ["job.succeeded"]},
    )
    assert created.status_code == 201 and created.json()["secret"] == "whsec_x"
    refused = await http.post(
        "/v1/webhooks/endpoints", headers=h, json={"url": "http://10.0.0.5/hook"}
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "url_refused")
    listed = await http.get("/v1/webhooks/endpoints", headers=h)
    assert listed.json()["endpoints"][0]["id"] == endpoint["id"]
    patched = await http.patch(
        f"/v1/webhooks/endpoints/{endpoint['id']}", headers=h, json={"enabled": False}
    )
    assert patched.json()["endpoint"]["enabled"] is False
    rotated = await http.post(f"/v1/webhooks/endpoints/{endpoint['id']}/rotate-secret", headers=h)
    assert rotated.json() == {"secret": "whsec_new"}
    deleted = await http.delete(f"/v1/webhooks/endpoints/{endpoint['id']}", headers=h)
    assert deleted.status_code == 204
    page = await http.get(
        "/v1/webhooks/deliveries", headers=h, params={"status": "failed", "limit": 5}
    )
    bulk = await http.post(
        "/v1/webhooks/deliveries/replay", headers=h, json={"since": "2026-11-21T10:00:00"}
    )
    assert bulk.status_code == 422  # no offset: ambiguous time
    assert bulk.json()["error"]["details"][0]["field"] == "body.since"
    assert page.json() == {"deliveries": [], "next_cursor": None}
    replay = await http.post("/v1/webhooks/deliveries/dlv_01HZX/replay", headers=h)
    assert (replay.status_code, replay.json()) == (202, {"delivery_id": "d1"})
    missing = await http.get(f"/v1/webhooks/deliveries/{uuid.uuid4()}", headers=h)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")

    notifier_calls = [
        r for r in upstreams.requests if r.url.port == 8084 and "/apps/" in r.url.path
    ]
    assert notifier_calls and all(
        r.url.path.startswith(f"/internal/apps/{tenant['id']}/") for r in notifier_calls
    )
    [listing] = [r for r in notifier_calls if r.url.path.endswith("/deliveries")]
    assert (listing.url.params["status"], listing.url.params["limit"]) == ("failed", "5")
    # The gateway refused the private URL itself: the notifier never saw it.
    assert (
        len([r for r in notifier_calls if r.method == "POST" and r.url.path.endswith("/endpoints")])
        == 1
    )


async def test_batch_grants_are_all_or_nothing_audited_and_idempotent(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    def batch(request: httpx.Request, m: re.Match[str]) -> httpx.Response:
        grants = json.loads(request.content)["grants"]
        if any(g["amount"] > 1000 for g in grants):
            return httpx.Response(
                422,
                json={
                    "error": {
                        "code": "validation_error",
                        "message": "bad row",
                        "details": [{"field": "body.grants.1.amount", "message": "too big"}],
                    }
                },
            )
        results = [
            {
                "user_id": g["user_id"],
                "transfer_id": str(uuid.uuid4()),
                "balance": g["amount"],
                "available": g["amount"],
            }
            for g in grants
        ]
        return httpx.Response(201, json={"results": results})

    upstreams.routes.append(("POST", r"/internal/apps/[^/]+/grants/batch", batch))
    h = {**tenant["headers"], "Idempotency-Key": "promo-1"}
    body = {
        "grants": [
            {"user_id": "a", "amount": 10, "reason": "promo"},
            {"user_id": "b", "amount": 20, "reason": "promo"},
        ]
    }
    first = await http.post("/v1/users/tokens/batch", headers=h, json=body)
    assert first.status_code == 201, first.text
    assert [r["user_id"] for r in first.json()["results"]] == ["a", "b"]
    again = await http.post("/v1/users/tokens/batch", headers=h, json=body)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(_calls(upstreams, "/grants/batch")) == 1
    audited = await rows(
        app,
        "SELECT target_id, after->>'amount' FROM audit_log"
        " WHERE action = 'tokens.grant' ORDER BY id",
    )
    assert audited == [("a", "10"), ("b", "20")]

    bad = {
        "grants": [
            {"user_id": "a", "amount": 10, "reason": "promo"},
            {"user_id": "b", "amount": 5000, "reason": "promo"},
        ]
    }
    refused = await http.post("/v1/users/tokens/batch", headers=tenant["headers"], json=bad)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["field"] == "body.grants.1.amount"
    assert len(await rows(app, "SELECT 1 FROM audit_log WHERE action = 'tokens.grant'")) == 2
    invalid = await http.post(
        "/v1/users/tokens/batch",
        headers=tenant["headers"],
        json={"grants": [{"user_id": "bad id", "amount": 1, "reason": "x"}]},
    )
    assert invalid.status_code == 422
    assert invalid.json()["error"]["details"][0]["field"] == "body.grants.0.user_id"


async def test_user_summary_has_free_quota_and_job_totals(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    key = tenant["headers"]["X-API-Key"]
    await submit(http, key, user="u7")
    await submit(http, key, user="u7")
    await submit(http, key, user="someone-else")
    async with app.state.runtime.engine.begin() as conn:
        from sqlalchemy import text

        await conn.execute(
            text(
                "UPDATE jobs SET status = 'succeeded', tokens_charged = 10 WHERE job_id ="
                " (SELECT job_id FROM jobs WHERE user_id = 'u7' LIMIT 1)"
            )
        )
    upstreams.routes.append(
        (
            "GET",
            r"/internal/apps/[^/]+/users/u7/balance",
            lambda r, m: httpx.Response(
                200,
                json={
                    "balance": 90,
                    "reserved": 10,
                    "available": 80,
                    "free_quota_left": 2,
                    "free_quota_per_day": 3,
                },
            ),
        )
    )
    user = (await http.get("/v1/users/u7", headers=tenant["headers"])).json()
    assert (user["balance"], user["free_quota_left"], user["free_quota_per_day"]) == (90, 2, 3)
    assert user["jobs"] == {
        "total": 2,
        "by_status": {"queued": 1, "succeeded": 1},
        "tokens_charged": 10,
    }


async def test_ledger_is_billings_for_this_app_and_user(
    http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    upstreams.routes.append(
        (
            "GET",
            r"/internal/apps/([^/]+)/users/([^/]+)/ledger",
            lambda r, m: httpx.Response(
                200, json={"entries": [{"kind": "grant"}], "next_cursor": None}
            ),
        )
    )
    unknown = await http.get("/v1/users/u%40x/ledger", headers=tenant["headers"])
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "user_not_found")
    assert _calls(upstreams, "/ledger") == []
    await submit(http, tenant["headers"]["X-API-Key"], user="u@x")  # names the user
    page = await http.get("/v1/users/u%40x/ledger?limit=5", headers=tenant["headers"])
    assert page.json()["entries"] == [{"kind": "grant"}]
    [call] = _calls(upstreams, "/ledger")
    assert call.url.raw_path.decode().startswith(
        f"/internal/apps/{tenant['id']}/users/u%40x/ledger"
    )
    assert call.url.params["limit"] == "5"


async def test_admin_proxies_forward_and_audit_changes(
    app: FastAPI, http: httpx.AsyncClient, upstreams: Any, tenant: dict[str, Any]
) -> None:
    upstreams.routes += [
        (
            "PUT",
            r"/internal/apps/[^/]+/settings",
            lambda r, m: httpx.Response(200, json={"plan": "pro", **json.loads(r.content)}),
        ),
        (
            "GET",
            r"/internal/catalog/models",
            lambda r, m: httpx.Response(200, json={"models": [{"name": "mock"}]}),
        ),
        (
            "PATCH",
            r"/internal/catalog/models/([^/]+)",
            lambda r, m: httpx.Response(
                422,
                json={
                    "error": {
                        "code": "validation_error",
                        "message": "no",
                        "details": [{"field": "body.enabled"}],
                    }
                },
            ),
        ),
        (
            "PUT",
            r"/internal/plans/([^/]+)",
            lambda r, m: httpx.Response(200, json={"plan": m[1], **json.loads(r.content)}),
        ),
    ]
    settings = await http.put(
        f"/admin/apps/{tenant['id']}/billing", headers=ADMIN, json={"free_daily_quota": 3}
    )
    assert settings.status_code == 200 and settings.json()["free_daily_quota"] == 3
    assert (await http.get("/admin/catalog/models", headers=ADMIN)).json() == {
        "models": [{"name": "mock"}]
    }
    bad = await http.patch("/admin/catalog/models/mock", headers=ADMIN, json={"enabled": "?"})
    assert bad.status_code == 422 and bad.json()["error"]["details"] == [{"field": "body.enabled"}]
    plan = await http.put("/admin/plans/pro", headers=ADMIN, json={"monthly_tokens": 5})
    assert plan.json() == {"plan": "pro", "monthly_tokens": 5}
    assert (await http.get("/admin/catalog/nonsense", headers=ADMIN)).status_code == 404
    unauthorised = await http.get("/admin/pricing")
    assert unauthorised.status_code == 401

    audited = await rows(
        app,
        "SELECT action, target_id, after->'request' FROM audit_log"
        " WHERE action NOT LIKE 'app.%' AND action NOT LIKE 'key.%' ORDER BY id",
    )
    assert audited == [
        ("billing.settings.update", tenant["id"], {"free_daily_quota": 3}),
        ("plan.update", "pro", {"monthly_tokens": 5}),
    ]
