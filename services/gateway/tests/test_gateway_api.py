"""HTTP behaviour through the real FastAPI app, with fake key lookup and fake upstreams.

None of these requests reaches the database: they stop at authentication, validation or an
upstream call.
"""

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_gateway.adapters.keystore import KeyStore
from genhub_gateway.adapters.repositories import KeyOwner
from genhub_gateway.domain.keys import generate_key

from .conftest import CountingLimiter

ACTIVE = generate_key()
REVOKED = generate_key()
DISABLED = generate_key()
APP_ID = uuid.uuid4()


def _owner(key_hash: str, *, revoked: bool = False, enabled: bool = True) -> KeyOwner:
    return KeyOwner(
        key_id=uuid.uuid4(),
        key_hash=key_hash,
        revoked=revoked,
        app_id=APP_ID,
        app_slug="acme",
        plan="pro",
        enabled=enabled,
        webhook_url=None,
    )


OWNERS = {
    ACTIVE.hash: _owner(ACTIVE.hash),
    REVOKED.hash: _owner(REVOKED.hash, revoked=True),
    DISABLED.hash: _owner(DISABLED.hash, enabled=False),
}


async def _lookup(key_hash: str) -> KeyOwner | None:
    return OWNERS.get(key_hash)


@pytest.fixture(autouse=True)
def fake_keys(app: FastAPI) -> None:
    app.state.gateway.keys = KeyStore(_lookup)
    app.state.gateway.limiter = CountingLimiter()
    # End users already seen: their first-use bookkeeping (a database write) is skipped here.
    for user in ("u1", "user@example.com"):
        app.state.gateway.known_users.add((str(APP_ID), user))


VALID = {"model": "mock", "input": {"prompt": "a boat"}}


def with_input(**fields: Any) -> dict[str, Any]:
    return {"model": "mock", "input": {"prompt": "x", **fields}}


GOOD = {"X-API-Key": ACTIVE.secret, "X-User-ID": "u1"}


def code(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["error"]["code"])


@pytest.mark.parametrize(
    ("headers", "status", "expected"),
    [
        ({}, 401, "missing_api_key"),
        ({"X-API-Key": ""}, 401, "missing_api_key"),
        ({"X-API-Key": "gh_live_not-a-real-key"}, 401, "invalid_api_key"),
        ({"X-API-Key": "nonsense"}, 401, "invalid_api_key"),
        ({"X-API-Key": REVOKED.secret}, 401, "invalid_api_key"),
        ({"X-API-Key": DISABLED.secret}, 403, "app_disabled"),
    ],
)
async def test_api_key_errors(
    http: httpx.AsyncClient, headers: dict[str, str], status: int, expected: str
) -> None:
    for method, path in (("POST", "/v1/generate"), ("GET", f"/v1/jobs/{uuid.uuid4()}")):
        response = await http.request(
            method, path, headers={"X-User-ID": "u1", **headers}, json=VALID
        )
        assert response.status_code == status, response.text
        assert code(response) == expected
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Bearer ", "Basic dGVzdA==", "test-admin-token"]
)
async def test_admin_requires_the_admin_token(
    http: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in (("GET", "/admin/apps"), ("POST", f"/admin/apps/{uuid.uuid4()}/keys")):
        response = await http.request(method, path, headers=headers)
        assert response.status_code == 401
        assert code(response) == "invalid_admin_token"


async def test_an_app_key_is_not_an_admin_token(http: httpx.AsyncClient) -> None:
    response = await http.get("/admin/apps", headers={"Authorization": f"Bearer {ACTIVE.secret}"})
    assert code(response) == "invalid_admin_token"


async def test_missing_and_invalid_user_id(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/generate", headers={"X-API-Key": ACTIVE.secret}, json=VALID)
    assert (response.status_code, code(response)) == (400, "missing_user_id")
    for bad in (b"a b", b"x" * 129, "é".encode(), b".."):
        response = await http.post(
            "/v1/generate", headers={"X-API-Key": ACTIVE.secret, "X-User-ID": bad}, json=VALID
        )
        assert (response.status_code, code(response)) == (400, "invalid_user_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "mock", "input": {"prompt": ""}}, "body.input.prompt"),
        (with_input(num_outputs=9), "body.input.num_outputs"),
        (with_input(num_outputs=0), "body.input.num_outputs"),
        (with_input(aspect_ratio="wide"), "body.input.aspect_ratio"),
        (with_input(seed=-1), "body.input.seed"),
        ({"model": "mock"}, "body.input"),
        ({"input": {"prompt": "x"}}, "body.model"),
        ({**VALID, "priority": 10}, "body.priority"),
        ({**VALID, "webhook_url": "not a url"}, "body.webhook_url"),
        ({**VALID, "metadata": {"big": "x" * 9000}}, "body.metadata"),
        ({**VALID, "surprise": 1}, "body.surprise"),
        ([1, 2, 3], "body"),
    ],
)  # fmt: skip
async def test_schema_errors_are_422_with_field_details(
    http: httpx.AsyncClient, body: Any, field: str
) -> None:
    response = await http.post("/v1/generate", headers=GOOD, json=body)
    assert response.status_code == 422, response.text
    assert code(response) == "validation_error"
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert field in fields


@pytest.mark.parametrize("raw", ["{not json", "", "null", '"text"'])
async def test_malformed_json_is_422(http: httpx.AsyncClient, raw: str) -> None:
    response = await http.post(
        "/v1/generate", headers={**GOOD, "Content-Type": "application/json"}, content=raw
    )
    assert response.status_code == 422, response.text
    assert code(response) == "validation_error"


@pytest.mark.parametrize("model", ["no-such-model", "retired"])
async def test_unknown_or_disabled_model_is_422_unknown_model(
    http: httpx.AsyncClient, model: str
) -> None:
    response = await http.post(
        "/v1/generate", headers=GOOD, json={"model": model, "input": {"prompt": "x"}}
    )
    assert (response.status_code, code(response)) == (422, "unknown_model")


async def test_model_max_outputs_is_enforced(http: httpx.AsyncClient, upstreams: Any) -> None:
    upstreams.models[0]["max_outputs"] = 2
    response = await http.post(
        "/v1/generate",
        headers=GOOD,
        json={"model": "mock", "input": {"prompt": "x", "num_outputs": 3}},
    )
    assert (response.status_code, code(response)) == (422, "validation_error")
    assert response.json()["error"]["details"][0]["field"] == "body.input.num_outputs"


@pytest.mark.parametrize(
    ("service", "method", "path", "body"),
    [
        ("orchestrator", "POST", "/v1/generate", VALID),
        ("orchestrator", "GET", "/v1/models", None),
        ("billing", "GET", "/v1/users/u1", None),
        ("billing", "POST", "/v1/users/u1/tokens", {"amount": 5, "reason": "gift"}),
    ],
)
async def test_unreachable_upstream_is_503(
    http: httpx.AsyncClient, upstreams: Any, service: str, method: str, path: str, body: Any
) -> None:
    upstreams.down.add(service)
    response = await http.request(method, path, headers=GOOD, json=body)
    assert response.status_code == 503, response.text
    assert code(response) == "upstream_unavailable"


@pytest.mark.parametrize(
    ("body", "status"),
    [({"amount": 0, "reason": "x"}, 422), ({"amount": 5}, 422), ({"amount": 5, "reason": ""}, 422)],
)
async def test_grant_validation(http: httpx.AsyncClient, body: Any, status: int) -> None:
    response = await http.post("/v1/users/u1/tokens", headers=GOOD, json=body)
    assert (response.status_code, code(response)) == (status, "validation_error")


async def test_invalid_user_id_in_path_is_400(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/users/" + "x" * 129, headers=GOOD)
    assert (response.status_code, code(response)) == (400, "invalid_user_id")


async def test_models_are_listed(http: httpx.AsyncClient, upstreams: Any) -> None:
    response = await http.get("/v1/models", headers=GOOD)
    # Only the models this app may use (enabled), with this app's price from billing.
    [mock] = response.json()["models"]
    assert (mock["name"], mock["tokens_per_output"], mock["max_outputs"]) == ("mock", 10, 4)
    assert upstreams.requests[-1].url.params["app_id"] == str(APP_ID)


async def test_openapi_documents_the_public_and_admin_api(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    for path in ("/v1/generate", "/v1/jobs/{job_id}", "/v1/users/{external_id}", "/admin/apps"):
        assert path in spec["paths"]
    assert (await http.get("/docs")).status_code == 200


async def test_every_operation_has_examples_in_openapi_3_1(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    missing = []
    for path, operations in spec["paths"].items():
        if not path.startswith(("/v1/", "/admin/")):
            continue
        for method, op in operations.items():
            responses = op["responses"]
            success = [s for s in responses if s.startswith("2") or s == "302"]
            documented = (
                any(
                    "example" in c
                    for s in success
                    for c in responses[s].get("content", {}).values()
                )
                or "302" in responses
            )
            for media, content in op.get("requestBody", {}).get("content", {}).items():
                if "json" in media and "example" not in content:
                    documented = False
            errors_are_problems = all(
                "application/problem+json" in responses[s].get("content", {})
                for s in responses
                if s.startswith(("4", "5"))
            )
            if not (documented and errors_are_problems and "401" in responses):
                missing.append(f"{method.upper()} {path}")
    assert missing == []


def test_an_api_only_replica_consumes_no_events(settings: Any) -> None:
    from genhub_gateway.main import create_app

    api_only = settings.model_copy(update={"project_events": False})
    assert create_app(api_only).state.runtime.consumer.topics == []
    projecting = create_app(settings).state.runtime.consumer.topics
    assert {"tokens.reserved", "tokens.rejected", "job.completed"} <= set(projecting)
