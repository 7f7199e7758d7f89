"""Fixtures for the gateway's tests: fake upstream services and the app against the test DB."""

import json
import os
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from fastapi import FastAPI
from genhub_gateway.adapters.urls import UrlChecker
from genhub_gateway.cli import MIGRATIONS_DIR
from genhub_gateway.config import Settings
from genhub_gateway.domain.ratelimit import Limit, Usage
from genhub_gateway.main import create_app
from genhub_platform.migrations import upgrade_to_head
from sqlalchemy import text

ADMIN_TOKEN = "test-admin-token"
TEST_DB_URL = os.environ.get(
    "GATEWAY_TEST_DATABASE_URL",
    "postgresql+asyncpg://{u}:{p}@{h}:{port}/genhub_gateway_test".format(
        u=os.environ.get("PGUSER", "genhub"),
        p=os.environ.get("PGPASSWORD", "genhub"),
        h=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
    ),
)


@dataclass
class FakeUpstreams:
    """Answers for billing, orchestrator, storage and notifier, switchable to 'down'."""

    down: set[str] = field(default_factory=set)
    models: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"name": "mock", "display_name": "Mock", "enabled": True, "max_outputs": 4},
            {"name": "retired", "display_name": "Old", "enabled": False, "max_outputs": 1},
        ]
    )
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    prices: dict[str, int] = field(default_factory=lambda: {"mock": 10})
    billing_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    # Extra answers: (method, path regex, handler(request, match)), tried first.
    routes: list[tuple[str, str, Callable[[httpx.Request, re.Match[str]], httpx.Response]]] = field(
        default_factory=list
    )
    applied_grants: set[tuple[str, str, str | None]] = field(default_factory=set)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        service = {8081: "billing", 8082: "orchestrator", 8083: "storage", 8084: "notifier"}[
            request.url.port or 0
        ]
        if service in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        for method, pattern, answer in self.routes:
            if request.method == method and (m := re.fullmatch(pattern, path)):
                return answer(request, m)
        if path == "/internal/models":
            return httpx.Response(200, json={"models": self.models})
        if m := re.fullmatch(r"/internal/apps/([^/]+)/settings", path):
            if request.method == "PUT":
                self.billing_settings.setdefault(m[1], {}).update(json.loads(request.content))
            return httpx.Response(200, json={"app_id": m[1], **self.billing_settings.get(m[1], {})})
        if path == "/internal/prices":
            listed = [{"model": m, "tokens_per_output": t} for m, t in self.prices.items()]
            return httpx.Response(200, json={"prices": listed})
        if m := re.fullmatch(r"/internal/apps/([^/]+)/signing-secret", path):
            return httpx.Response(201, json={"secret": "whsec_dGVzdC1zZWNyZXQ="})
        if m := re.fullmatch(r"/internal/apps/([^/]+)/users/([^/]+)/balance", path):
            balance = self.balances.get((m[1], m[2]), 0)
            body = {"app_id": m[1], "user_id": m[2], "balance": balance, "reserved": 0}
            return httpx.Response(200, json={**body, "available": balance})
        if m := re.fullmatch(r"/internal/apps/([^/]+)/users/([^/]+)/grants", path):
            grant = json.loads(request.content)
            if grant["amount"] <= 0:
                return httpx.Response(422, json={"error": {"code": "validation_error"}})
            # Like billing: a grant's idempotency key applies it once per (app, user).
            once = (m[1], m[2], grant.get("idempotency_key"))
            if once[2] is None or once not in self.applied_grants:
                self.applied_grants.add(once)
                self.balances[(m[1], m[2])] = self.balances.get((m[1], m[2]), 0) + grant["amount"]
            total = self.balances[(m[1], m[2])]
            return httpx.Response(
                201,
                json={"transfer_id": "t-1", "balance": total, "reserved": 0, "available": total},
            )
        if m := re.fullmatch(r"/internal/apps/([^/]+)/jobs/([^/]+)/files", path):
            files = self.files.get(m[2])
            if files is None:
                return httpx.Response(404, json={"error": {"code": "not_found"}})
            return httpx.Response(200, json={"files": files})
        return httpx.Response(404, json={"error": {"code": "not_found"}})


class CountingLimiter:
    """In-memory stand-in for the database rate limiter (tests that never reach the DB)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def hit(self, limits: Sequence[Limit]) -> list[Usage]:
        usages = []
        for limit in limits:
            count = self.counts.get(limit.bucket, 0)
            allowed = count < limit.quota
            usages.append(Usage(limit, allowed, count + 1 if allowed else count, 60.0))
        if all(u.allowed for u in usages):
            for limit in limits:
                self.counts[limit.bucket] = self.counts.get(limit.bucket, 0) + 1
        return usages


def _db_reachable(url: str) -> bool:
    parsed = urlparse(url.replace("+asyncpg", ""))
    try:
        with socket.create_connection((parsed.hostname or "", parsed.port or 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def migrated_db() -> str:
    if not _db_reachable(TEST_DB_URL):
        pytest.fail("PostgreSQL for genhub_gateway_test is not reachable (run `make infra-up`)")
    upgrade_to_head(MIGRATIONS_DIR, TEST_DB_URL)
    return TEST_DB_URL


@pytest.fixture
def upstreams() -> FakeUpstreams:
    return FakeUpstreams()


@pytest.fixture
def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        GENHUB_ADMIN_TOKEN=ADMIN_TOKEN,
        GATEWAY_DATABASE_URL=TEST_DB_URL,
        LOG_LEVEL="WARNING",
    )


# Offline DNS for the SSRF checks: names ending in .internal resolve to a private address,
# every other name to a public one.
async def fake_resolver(host: str, port: int) -> list[str]:
    if host.endswith(".internal"):
        return ["10.1.2.3"]
    return ["93.184.216.34"]


@pytest.fixture
def app(settings: Settings, upstreams: FakeUpstreams) -> Iterator[FastAPI]:
    app = create_app(settings, upstream_transport=httpx.MockTransport(upstreams.handle))
    app.state.gateway.urls = UrlChecker(allow_private=False, resolver=fake_resolver)
    yield app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client
    await app.state.gateway.upstreams.http.aclose()
    await app.state.gateway.pool.close()
    await app.state.runtime.engine.dispose()


@pytest.fixture
async def clean_db(migrated_db: str, app: FastAPI) -> FastAPI:
    async with app.state.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE outbox, processed_events, idempotency_keys, jobs, api_keys, end_users,"
                " rate_limit_counters, admin_tokens, audit_log, apps"
                " RESTART IDENTITY CASCADE"
            )
        )
    return app
