"""End-to-end suite: the whole stack over real Kafka, PostgreSQL and MinIO.

Endpoints come from the environment first (so the same suite runs against compose or a
cluster), then the local defaults of `make up`. When the stack is not reachable the suite
fails; it never skips.
"""

import secrets
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from e2e_receiver import WebhookReceiver
from e2e_support import Endpoints, Tenant, new_app
from genhub_client import AsyncGenhub, AsyncGenhubAdmin

ENDPOINTS = Endpoints.from_env()
_REAL_BACKENDS: list[str] = []


async def _prove_real_backends(ep: Endpoints) -> list[str]:
    """Talk to each backing server directly, so the banner states what was really used."""
    found: list[str] = []
    admin = AIOKafkaAdminClient(bootstrap_servers=ep.kafka)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        found.append(f"Kafka {ep.kafka} (cluster {cluster['cluster_id']})")
    finally:
        await admin.close()
    dsn = ep.postgres_dsn.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        version = await conn.fetchval("SHOW server_version")
        found.append(f"PostgreSQL {version} at {urlparse(dsn).hostname}:{urlparse(dsn).port}")
    finally:
        await conn.close()
    s3 = ep.s3 if "://" in ep.s3 else f"http://{ep.s3}"
    async with httpx.AsyncClient(timeout=5) as client:
        (await client.get(f"{s3}/minio/health/ready")).raise_for_status()
    found.append(f"MinIO {s3}")
    return found


@pytest.fixture(scope="session")
def endpoints() -> Endpoints:
    return ENDPOINTS


@pytest.fixture(scope="session", autouse=True)
async def stack(endpoints: Endpoints) -> Endpoints:
    services = {
        "gateway": endpoints.gateway,
        "billing": endpoints.billing,
        "orchestrator": endpoints.orchestrator,
        "storage": endpoints.storage,
        "notifier": endpoints.notifier,
    }
    async with httpx.AsyncClient(timeout=5) as client:
        for name, url in services.items():
            try:
                response = await client.get(f"{url}/readyz")
            except httpx.HTTPError as exc:
                pytest.fail(f"{name} at {url} is not reachable ({exc}); run `make up` first")
            if response.status_code != 200:
                pytest.fail(f"{name} at {url} is not ready: {response.text}")
    if not endpoints.admin_token:
        pytest.fail("GENHUB_ADMIN_TOKEN is not set (make up writes it to var/secrets.env)")
    try:
        _REAL_BACKENDS[:] = await _prove_real_backends(endpoints)
    except Exception as exc:
        pytest.fail(f"backing servers not reachable: {exc!r}")
    return endpoints


@pytest.fixture
async def admin(endpoints: Endpoints) -> AsyncIterator[AsyncGenhubAdmin]:
    async with AsyncGenhubAdmin(endpoints.gateway, endpoints.admin_token) as client:
        yield client


async def _new_tenant(admin: AsyncGenhubAdmin, endpoints: Endpoints) -> AsyncIterator[Tenant]:
    slug = f"e2e-{secrets.token_hex(4)}"
    created = await new_app(admin, slug)
    async with AsyncGenhub(endpoints.gateway, created.api_key) as client:
        yield Tenant(str(created.app.id), slug, created.api_key, created.webhook_secret, client)


@pytest.fixture
async def tenant(admin: AsyncGenhubAdmin, endpoints: Endpoints) -> AsyncIterator[Tenant]:
    async for t in _new_tenant(admin, endpoints):
        yield t


@pytest.fixture
async def other_tenant(admin: AsyncGenhubAdmin, endpoints: Endpoints) -> AsyncIterator[Tenant]:
    async for t in _new_tenant(admin, endpoints):
        yield t


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver("127.0.0.1", _free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def user_id() -> str:
    return f"user-{secrets.token_hex(4)}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    passed = len(terminalreporter.stats.get("passed", []))
    failed = len(terminalreporter.stats.get("failed", [])) + len(
        terminalreporter.stats.get("error", [])
    )
    if _REAL_BACKENDS:
        terminalreporter.write_line(
            f"e2e: {passed} passed, {failed} failed against real " + "; ".join(_REAL_BACKENDS)
        )
    else:
        terminalreporter.write_line("e2e: the stack was NOT reached; nothing ran against it")
