"""POST /v1/generate's fast path (handlers/fastpath.py) answers exactly as the middleware
stack and the FastAPI route do: each request is sent to the real app and to the same app with
the fast path removed, and the answers are compared. None of these requests reaches the
database."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_gateway.adapters.keystore import KeyStore
from genhub_gateway.adapters.urls import UrlChecker
from genhub_gateway.config import Settings
from genhub_gateway.handlers import fastpath
from genhub_gateway.main import create_app

from .conftest import CountingLimiter, FakeUpstreams, fake_resolver
from .test_gateway_api import ACTIVE, APP_ID, DISABLED, GOOD, VALID, _lookup

JSON = {"Content-Type": "application/json"}

# (headers, raw body, whether the fast path serves it rather than handing it to the route)
CASES: list[tuple[dict[str, str], bytes, bool]] = [
    ({**JSON}, b'{"model":"mock","input":{"prompt":"a"}}', True),  # 401 missing key
    ({**JSON, "X-API-Key": "gh_live_nope"}, b'{"model":"mock","input":{"prompt":"a"}}', True),
    ({**JSON, "X-API-Key": DISABLED.secret}, b'{"model":"mock","input":{"prompt":"a"}}', True),
    ({**JSON, **GOOD}, b'{"model":"no-such","input":{"prompt":"a"}}', True),  # unknown_model
    ({**JSON, "X-API-Key": ACTIVE.secret}, b'{"model":"mock","input":{"prompt":"a"}}', True),
    ({**JSON, **GOOD, "X-User-ID": "bad id"}, b'{"model":"mock","input":{"prompt":"a"}}', True),
    ({**JSON, **GOOD, "Prefer": "wait=abc"}, b'{"model":"mock","input":{"prompt":"a"}}', True),
    ({**JSON, **GOOD}, b"{not json", False),
    ({**JSON, **GOOD}, b"", False),
    ({**JSON, **GOOD}, b'{"model":"mock","input":{"prompt":"a"},"surprise":1}', False),
    ({**JSON, **GOOD}, b"[1, 2]", False),
    ({**JSON}, b"{not json", False),
    ({**GOOD, "Content-Type": "text/plain"}, b'{"model":"no-such","input":{"prompt":"a"}}', False),
    ({**GOOD}, b'{"model":"no-such","input":{"prompt":"a"}}', False),
    ({**JSON, **GOOD, "Idempotency-Key": "k" * 256}, b'{"model":"no-such","input":{}}', False),
]


def _prepare(app: FastAPI) -> FastAPI:
    app.state.gateway.urls = UrlChecker(allow_private=False, resolver=fake_resolver)
    app.state.gateway.keys = KeyStore(_lookup)
    app.state.gateway.limiter = CountingLimiter()
    app.state.gateway.known_users.add((str(APP_ID), "u1"))
    return app


@pytest.fixture
async def clients(
    settings: Settings, upstreams: FakeUpstreams
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    apps = [
        _prepare(create_app(settings, upstream_transport=httpx.MockTransport(upstreams.handle)))
        for _ in range(2)
    ]
    route_only = apps[1]
    del route_only.build_middleware_stack  # fastpath.install's: the class's stack again
    opened = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://gateway",
        )
        for app in apps
    ]
    yield opened[0], opened[1]
    for client, app in zip(opened, apps, strict=True):
        await client.aclose()
        await app.state.gateway.upstreams.http.aclose()
        await app.state.gateway.pool.close()
        await app.state.runtime.engine.dispose()


def _answer(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    headers = {
        k: v for k, v in response.headers.items() if k not in ("x-request-id", "content-length")
    }
    return response.status_code, response.json(), headers


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The API keys of the requests the fast path served (it authenticates them)."""
    keys: list[str | None] = []
    real = fastpath.authenticate_app

    async def counting(request: Any, api_key: str | None) -> Any:
        keys.append(api_key)
        return await real(request, api_key)

    monkeypatch.setattr(fastpath, "authenticate_app", counting)
    return keys


@pytest.mark.parametrize(("headers", "raw", "fast"), CASES)
async def test_fast_path_answers_as_the_route_does(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    served: list[str | None],
    headers: dict[str, str],
    raw: bytes,
    fast: bool,
) -> None:
    with_fast_path, route_only = clients
    answer = _answer(await with_fast_path.post("/v1/generate", headers=headers, content=raw))
    assert bool(served) is fast
    expected = _answer(await route_only.post("/v1/generate", headers=headers, content=raw))
    assert answer == expected
    assert answer[0] >= 400  # none of these reaches the database


async def test_fast_path_requests_are_labelled_with_the_route_in_metrics(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    with_fast_path, _ = clients
    response = await with_fast_path.post(
        "/v1/generate", headers={**GOOD, "X-User-ID": "bad id"}, json=VALID
    )
    assert response.status_code == 400
    metrics = (await with_fast_path.get("/metrics")).text
    assert (
        'genhub_http_request_duration_seconds_count{method="POST",route="/v1/generate",'
        'service="gateway",status="400"}'
    ) in metrics


async def test_fast_path_request_spans_are_named_after_the_route(
    settings: Settings, upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genhub_platform import runtime
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # records every span, as with a collector configured
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The runtime's tracing set-up as with an exporter: FastAPI's request spans are on.
    monkeypatch.setattr(runtime, "setup_tracing", lambda *_: provider)
    app = _prepare(create_app(settings, upstream_transport=httpx.MockTransport(upstreams.handle)))
    assert app.state.request_spans is True
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/v1/generate", headers={**GOOD, "X-User-ID": "bad id"}, json=VALID
        )
    await app.state.gateway.upstreams.http.aclose()
    await app.state.runtime.engine.dispose()
    assert response.status_code == 400
    [span] = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert span.name == "POST /v1/generate"
    assert span.attributes is not None and span.attributes["http.route"] == "/v1/generate"


async def test_fast_path_answers_carry_the_request_id(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], served: list[str | None]
) -> None:
    with_fast_path, _ = clients
    given = await with_fast_path.post(
        "/v1/generate", headers={**GOOD, "X-User-ID": "bad id", "X-Request-ID": "req-7"}, json=VALID
    )
    made = await with_fast_path.post(
        "/v1/generate", headers={**GOOD, "X-User-ID": "bad id", "X-Request-ID": "a b"}, json=VALID
    )
    assert len(served) == 2  # both served by the fast path
    assert given.status_code == 400 and given.headers["x-request-id"] == "req-7"
    assert made.status_code == 400 and len(made.headers["x-request-id"]) == 32


async def test_an_unexpected_error_on_the_fast_path_is_a_500_problem(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(fastpath.http, "generate_unmetered", broken)
    with_fast_path, _ = clients
    response = await with_fast_path.post("/v1/generate", headers=GOOD, json=VALID)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"]["code"] == "internal_error"
    assert "boom" not in response.text
    metrics = (await with_fast_path.get("/metrics")).text
    assert (
        'genhub_http_request_duration_seconds_count{method="POST",route="/v1/generate",'
        'service="gateway",status="500"}'
    ) in metrics
