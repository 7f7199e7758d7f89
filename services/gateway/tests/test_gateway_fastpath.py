"""POST /v1/generate's fast path (handlers/fastpath.py) answers exactly as the FastAPI route
does: each request is sent to the real app and to the same app with the fast path removed,
and the answers are compared. None of these requests reaches the database."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from genhub_gateway.adapters.keystore import KeyStore
from genhub_gateway.adapters.urls import UrlChecker
from genhub_gateway.config import Settings
from genhub_gateway.handlers import fastpath
from genhub_gateway.handlers.fastpath import GenerateFastPath
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
    route_only.user_middleware = [
        m for m in route_only.user_middleware if m.cls is not GenerateFastPath
    ]
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


@pytest.mark.parametrize(("headers", "raw", "fast"), CASES)
async def test_fast_path_answers_as_the_route_does(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    raw: bytes,
    fast: bool,
) -> None:
    served: list[str | None] = []
    real = fastpath.authenticate_app

    async def counting(request: Any, api_key: str | None) -> Any:
        served.append(api_key)
        return await real(request, api_key)

    monkeypatch.setattr(fastpath, "authenticate_app", counting)
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
