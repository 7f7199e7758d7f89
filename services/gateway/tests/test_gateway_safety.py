"""SSRF checks on webhook and input image URLs, the body size limit, request ids and strict
validation with field-level details. Authentication and rate limits are faked: nothing here
reaches the database."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_gateway.adapters.urls import UrlChecker

from .conftest import fake_resolver
from .test_gateway_api import GOOD, code, fake_keys  # noqa: F401 (autouse: keys and limits faked)


def _generate(**extra: Any) -> dict[str, Any]:
    return {"model": "mock", "input": {"prompt": "x"}, **extra}


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9000/hook", "address_refused"),
        ("http://169.254.169.254/latest/meta-data", "address_refused"),
        ("https://hooks.internal/x", "address_refused"),  # resolves to 10.1.2.3
        ("http://[::ffff:10.0.0.1]/x", "address_refused"),
        ("http://0.0.0.0/x", "address_refused"),
    ],
)
async def test_webhook_url_to_internal_addresses_is_refused(
    http: httpx.AsyncClient, url: str, reason: str
) -> None:
    response = await http.post("/v1/generate", headers=GOOD, json=_generate(webhook_url=url))
    assert response.status_code == 422, response.text
    assert code(response) == "url_refused"
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["type"]) == ("body.webhook_url", reason)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("http://images.example.com/a.png", "https_required"),
        ("https://10.0.0.8/a.png", "address_refused"),
        ("https://files.internal/a.png", "address_refused"),
        ("ftp://images.example.com/a.png", "invalid_scheme"),
    ],
)
async def test_input_image_urls_must_be_public_https(
    http: httpx.AsyncClient, image: str, reason: str
) -> None:
    body = {"model": "mock", "input": {"prompt": "x", "images": [image]}}
    response = await http.post("/v1/generate", headers=GOOD, json=body)
    assert (response.status_code, code(response)) == (422, "url_refused"), response.text
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["type"]) == ("body.input.images.0", reason)


async def test_private_urls_pass_when_the_deployment_allows_them_but_metadata_never(
    app: FastAPI,
) -> None:
    checker = UrlChecker(allow_private=True, resolver=fake_resolver)
    await checker.webhook("http://127.0.0.1:9000/hook", "f")
    await checker.image("https://files.internal/a.png", "f")
    with pytest.raises(Exception, match="not allowed"):
        await checker.webhook("http://169.254.169.254/", "f")


async def test_the_default_refuses_private_urls() -> None:
    from genhub_gateway.config import Settings

    settings = Settings(GENHUB_ADMIN_TOKEN="x")  # type: ignore[call-arg]
    assert settings.allow_private_urls is False


async def test_an_upload_key_of_another_app_is_refused_without_asking_storage(
    http: httpx.AsyncClient, upstreams: Any
) -> None:
    other = "inputs/00000000-0000-0000-0000-000000000000/a.png"
    body = {"model": "mock", "input": {"prompt": "x", "images": [other]}}
    response = await http.post("/v1/generate", headers=GOOD, json=body)
    assert (response.status_code, code(response)) == (422, "unknown_upload")
    assert not [r for r in upstreams.requests if "/uploads/" in r.url.path]


async def test_a_body_over_the_limit_is_413(app: FastAPI, http: httpx.AsyncClient) -> None:
    app.state.gateway.settings.max_body_bytes = 2048  # read per request by the middleware
    big = _generate(metadata={"blob": "x" * 4000})
    response = await http.post("/v1/generate", headers=GOOD, json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert code(response) == "payload_too_large"


async def test_a_streamed_body_over_the_limit_is_413(app: FastAPI, http: httpx.AsyncClient) -> None:
    app.state.gateway.settings.max_body_bytes = 2048

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000  # no Content-Length: counted as it arrives

    response = await http.post(
        "/v1/generate", headers={**GOOD, "Content-Type": "application/json"}, content=chunks()
    )
    assert (response.status_code, code(response)) == (413, "payload_too_large")


async def test_request_id_is_echoed_or_made(http: httpx.AsyncClient) -> None:
    given = await http.get("/v1/models", headers={**GOOD, "X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await http.get("/v1/models", headers={**GOOD, "X-Request-ID": "bad id\twith tab"})
    assert len(made.headers["x-request-id"]) == 32


async def test_validation_errors_name_each_field(http: httpx.AsyncClient) -> None:
    body = {
        "model": "",
        "input": {"prompt": "", "num_outputs": 9, "quality": "ultra"},
        "priority": 10,
        "cache": "sometimes",
        "surprise": 1,
    }
    response = await http.post("/v1/generate", headers=GOOD, json=body)
    assert (response.status_code, code(response)) == (422, "validation_error")
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert {
        "body.model",
        "body.input.prompt",
        "body.input.num_outputs",
        "body.input.quality",
        "body.priority",
        "body.cache",
        "body.surprise",
    } <= fields
